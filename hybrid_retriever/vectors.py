"""The sparse vector value type shared by encoders and storage backends."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SparseVector:
    """A sparse vector as parallel lists: ``values[i]`` is the weight of ``indices[i]``.

    For SPLADE the indices are vocabulary token ids and the values are
    non-negative term weights; search scores are dot products.
    """

    indices: list[int]
    values: list[float]

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.values):
            raise ValueError(
                f"SparseVector has {len(self.indices)} indices but {len(self.values)} values; "
                "they must be the same length."
            )

    def __len__(self) -> int:
        return len(self.indices)
