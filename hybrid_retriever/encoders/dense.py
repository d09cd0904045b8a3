"""Dense encoders: a sentence-transformers model, or any LangChain ``Embeddings``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings

from hybrid_retriever.encoders.base import DenseEncoder, LazyModel
from hybrid_retriever.encoders.loading import load_sentence_transformers_model
from hybrid_retriever.model_catalog import DEFAULT_DENSE_MODEL

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class SentenceTransformerEncoder(DenseEncoder):
    """A ``sentence_transformers.SentenceTransformer`` model, loaded on first use.

    ``model`` is a short name from :mod:`hybrid_retriever.model_catalog`, a hub
    id or a local directory.
    """

    def __init__(
        self,
        model: str = DEFAULT_DENSE_MODEL,
        *,
        device: str | None = None,
        batch_size: int = 32,
    ) -> None:
        self._model_name = model
        self._device = device
        self._batch_size = batch_size
        self._model: LazyModel[SentenceTransformer] = LazyModel(self._load)

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder(model={self._model_name!r})"

    def _load(self) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer

        return load_sentence_transformers_model(
            SentenceTransformer, self._model_name, kind="dense", device=self._device
        )

    @property
    def name(self) -> str:
        return self._model_name

    @property
    def model(self) -> SentenceTransformer:
        """The underlying model (loads it if needed)."""
        return self._model.get()

    @property
    def dimension(self) -> int:
        model = self.model
        # sentence-transformers renamed the method in v6; accept both.
        get_dimension = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        dimension = get_dimension()
        if dimension is None:  # pragma: no cover - only for exotic custom modules
            return len(self.encode_query("dimension probe"))
        return int(dimension)

    def encode_documents(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self.model.encode_document(
            list(texts), batch_size=self._batch_size, show_progress_bar=False
        )
        return [row.tolist() for row in vectors]

    def encode_query(self, text: str) -> list[float]:
        vectors = self.model.encode_query([text], show_progress_bar=False)
        return list(vectors[0].tolist())


class LangChainEmbeddingsEncoder(DenseEncoder):
    """Adapts any LangChain ``Embeddings`` (OpenAI, Hugging Face, Ollama, ...).

    LangChain embeddings do not report their dimension, so it is measured once
    by embedding a short probe text, and then cached.
    """

    def __init__(self, embeddings: Embeddings) -> None:
        self._embeddings = embeddings
        self._dimension: int | None = None

    def __repr__(self) -> str:
        return f"LangChainEmbeddingsEncoder({type(self._embeddings).__name__})"

    @property
    def name(self) -> str:
        return type(self._embeddings).__name__

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = len(self._embeddings.embed_query("dimension probe"))
        return self._dimension

    def encode_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [list(map(float, v)) for v in self._embeddings.embed_documents(list(texts))]

    def encode_query(self, text: str) -> list[float]:
        return list(map(float, self._embeddings.embed_query(text)))


def as_dense_encoder(value: Any) -> DenseEncoder:
    """Accept a model name, a LangChain ``Embeddings`` or a ready ``DenseEncoder``."""
    if isinstance(value, DenseEncoder):
        return value
    if isinstance(value, str):
        return SentenceTransformerEncoder(value)
    if isinstance(value, Embeddings):
        return LangChainEmbeddingsEncoder(value)
    raise TypeError(
        f"dense_encoder must be a model name, a LangChain Embeddings or a DenseEncoder, "
        f"not {type(value).__name__}."
    )
