"""How a collection keeps its dense vectors: in memory or on disk, quantised or not.

At a million points the dense vectors (384 floats each, 1.5 GB) and their HNSW graph
dominate memory. Qdrant can keep the originals on disk and search a quantised copy in
RAM (int8: 4x smaller; binary: 32x), rescoring the best candidates with the originals.
These are properties of the collection, fixed when it is created: the engine keeps the
storage settings in its own configuration, and this package keeps the search-time ones
(``rescore``, ``oversampling``, ``hnsw_ef``) in the collection's metadata beside the model
record, so a collection reopens as it was built with no argument.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from hybrid_retriever.errors import InvalidParameterError

STORAGE_KEY = "vector_storage"
"""The key of the search-time settings in a collection's metadata (Edge: the metadata
file beside the shard; Qdrant: the collection's metadata)."""

SEARCH_FIELDS = ("rescore", "oversampling", "hnsw_ef")
"""The fields applied at search time rather than kept in the engine's configuration."""


class Quantization(str, Enum):
    """The compressed copy of the dense vectors that search scans first."""

    NONE = "none"
    INT8 = "int8"
    """Scalar quantisation: one byte per dimension, 4x less memory."""
    BINARY = "binary"
    """One bit per dimension, 32x less memory; needs rescoring (and oversampling)."""


@dataclass(frozen=True, slots=True)
class VectorStorage:
    """Memory and speed settings of a collection's dense vectors (see the module docstring).

    ``VectorStorage()`` is the engine's default: everything in RAM, no quantisation.
    """

    quantization: Quantization = Quantization.NONE
    dense_on_disk: bool = False
    """Keep the original dense vectors on disk (memory-mapped), read when rescoring."""
    hnsw_on_disk: bool = False
    """Keep the dense HNSW graph on disk (memory-mapped)."""
    rescore: bool = True
    """With quantisation: rescore the candidates with the original vectors."""
    oversampling: float | None = None
    """With quantisation: fetch this many times the candidates before rescoring
    (None: the engine's default, 1.0)."""
    hnsw_ef: int | None = None
    """Candidates the dense HNSW search explores (None: the engine's default, which is
    at least the number of results asked for)."""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "quantization", Quantization(self.quantization))
        except ValueError:
            choices = ", ".join(repr(q.value) for q in Quantization)
            raise InvalidParameterError(
                f"quantization={self.quantization!r} is not a quantisation this package "
                f"offers; use one of {choices}."
            ) from None
        for name in ("dense_on_disk", "hnsw_on_disk", "rescore"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidParameterError(
                    f"{name}={getattr(self, name)!r} must be True or False."
                )
        oversampling = self.oversampling
        if oversampling is not None and (
            isinstance(oversampling, bool)
            or not isinstance(oversampling, int | float)
            or not math.isfinite(oversampling)
            or oversampling < 1
        ):
            raise InvalidParameterError(
                f"oversampling={oversampling!r} must be a number >= 1 (how many times the "
                "candidates to fetch before rescoring), or None for the engine's default."
            )
        ef = self.hnsw_ef
        if ef is not None and (isinstance(ef, bool) or not isinstance(ef, int) or ef < 1):
            raise InvalidParameterError(
                f"hnsw_ef={ef!r} must be a positive integer, or None for the engine's default."
            )

    @property
    def is_default(self) -> bool:
        return self == VectorStorage()

    def search_settings(self) -> dict[str, Any]:
        """The search-time fields, as kept in the collection's metadata."""
        return {name: getattr(self, name) for name in SEARCH_FIELDS}

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["quantization"] = self.quantization.value
        return values

    def with_search_settings(self, settings: Mapping[str, Any] | None) -> VectorStorage:
        """These storage settings with the search-time ones read from metadata (a
        collection written before they existed has none: the defaults)."""
        if not settings:
            return self
        known = {name: settings[name] for name in SEARCH_FIELDS if name in settings}
        return VectorStorage(
            quantization=self.quantization,
            dense_on_disk=self.dense_on_disk,
            hnsw_on_disk=self.hnsw_on_disk,
            **known,
        )

    def differences(self, other: VectorStorage) -> list[str]:
        """``field: ours vs other`` for every field that differs."""
        mine, theirs = self.as_dict(), other.as_dict()
        return [f"{k}={theirs[k]!r} (asked: {mine[k]!r})" for k in mine if mine[k] != theirs[k]]


def check_vector_storage(value: object) -> None:
    """``vector_storage=`` is a :class:`VectorStorage` or None, not a bare mode name."""
    if value is not None and not isinstance(value, VectorStorage):
        raise InvalidParameterError(
            f"vector_storage={value!r} is not a VectorStorage; pass e.g. "
            "vector_storage=VectorStorage(quantization='int8'), or None for the default."
        )
