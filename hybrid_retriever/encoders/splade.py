"""SPLADE sparse encoder through ``sentence_transformers.SparseEncoder``.

SPLADE (Formal et al., 2021, https://arxiv.org/abs/2107.05720) scores every
vocabulary term from a masked-LM head and keeps ``log(1 + relu(logit))``
max-pooled over tokens; most terms come out zero, so the result is sparse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hybrid_retriever.encoders.base import LazyModel, SparseEncoder
from hybrid_retriever.encoders.loading import load_sentence_transformers_model
from hybrid_retriever.errors import ModelLoadError
from hybrid_retriever.model_catalog import DEFAULT_SPARSE_MODEL
from hybrid_retriever.vectors import SparseVector

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SparseEncoder as SentenceTransformersSparseEncoder


class SpladeEncoder(SparseEncoder):
    """A SPLADE model (a masked-LM with SPLADE pooling), loaded on first use.

    Queries go through ``encode_query`` and documents through
    ``encode_document``, because some SPLADE variants treat them differently.
    """

    def __init__(
        self,
        model: str = DEFAULT_SPARSE_MODEL,
        *,
        device: str | None = None,
        batch_size: int = 32,
    ) -> None:
        self._model_name = model
        self._device = device
        self._batch_size = batch_size
        self._model: LazyModel[SentenceTransformersSparseEncoder] = LazyModel(self._load)

    def __repr__(self) -> str:
        return f"SpladeEncoder(model={self._model_name!r})"

    def _load(self) -> SentenceTransformersSparseEncoder:
        from sentence_transformers import SparseEncoder as SentenceTransformersSparseEncoder

        model = load_sentence_transformers_model(
            SentenceTransformersSparseEncoder, self._model_name, kind="sparse", device=self._device
        )
        _require_masked_lm(model, self._model_name)
        return model

    @property
    def name(self) -> str:
        return self._model_name

    @property
    def model(self) -> SentenceTransformersSparseEncoder:
        """The underlying sentence-transformers model (loads it if needed)."""
        return self._model.get()

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        if not texts:
            return []
        matrix = self.model.encode_document(
            list(texts),
            batch_size=self._batch_size,
            convert_to_tensor=True,
            convert_to_sparse_tensor=True,
            show_progress_bar=False,
        )
        return sparse_rows(matrix, len(texts))

    def encode_query(self, text: str) -> SparseVector:
        matrix = self.model.encode_query(
            [text], convert_to_tensor=True, convert_to_sparse_tensor=True, show_progress_bar=False
        )
        return sparse_rows(matrix, 1)[0]

    def decode(self, vector: SparseVector, *, top_k: int = 10) -> list[tuple[str, float]]:
        """The ``top_k`` heaviest vocabulary tokens of ``vector``, for explanations."""
        order = sorted(range(len(vector)), key=lambda i: -vector.values[i])[:top_k]
        tokens = self.model.tokenizer.convert_ids_to_tokens([vector.indices[i] for i in order])
        return [(str(token), vector.values[i]) for token, i in zip(tokens, order, strict=True)]


def sparse_rows(matrix: torch.Tensor, n_rows: int) -> list[SparseVector]:
    """Split a [n_rows, vocab] torch sparse COO tensor into one SparseVector per row."""
    import torch

    coalesced = matrix.coalesce().cpu()
    rows, columns = coalesced.indices()
    values = coalesced.values().float()
    # Coalesced COO indices are sorted row-major, so each row is a contiguous run.
    counts = torch.bincount(rows, minlength=n_rows).tolist()
    vectors: list[SparseVector] = []
    start = 0
    for count in counts:
        end = start + count
        vectors.append(
            SparseVector(indices=columns[start:end].tolist(), values=values[start:end].tolist())
        )
        start = end
    return vectors


def _require_masked_lm(model: Any, name: str) -> None:
    """SPLADE needs a masked-LM head; anything else produces meaningless weights."""
    first_module = model[0]
    architecture = type(getattr(first_module, "auto_model", first_module)).__name__
    if not architecture.endswith("ForMaskedLM"):
        raise ModelLoadError(
            f"The sparse model {name!r} is a {architecture}, not a masked-language model, so "
            "it cannot produce SPLADE vectors. Pass a SPLADE checkpoint (a *ForMaskedLM model "
            "such as 'splade-tiny' or 'naver/splade-cocondenser-ensembledistil')."
        )


def as_sparse_encoder(value: Any) -> SparseEncoder:
    """Accept a model name or a ready ``SparseEncoder``."""
    if isinstance(value, SparseEncoder):
        return value
    if isinstance(value, str):
        return SpladeEncoder(value)
    raise TypeError(
        f"sparse_encoder must be a model name or a SparseEncoder, not {type(value).__name__}."
    )
