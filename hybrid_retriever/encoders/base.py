"""What the retriever needs from an encoder, whatever model sits behind it.

Queries and documents are separate methods because asymmetric models encode
them differently (prompts, query-side expansion rules).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from hybrid_retriever.vectors import SparseVector

ModelT = TypeVar("ModelT")


class DenseEncoder(ABC):
    """Turns text into fixed-size float vectors."""

    @property
    @abstractmethod
    def name(self) -> str:
        """Human-readable model name, used in error messages."""

    @property
    @abstractmethod
    def dimension(self) -> int:
        """Length of every vector this encoder returns."""

    @abstractmethod
    def encode_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""

    @abstractmethod
    def encode_query(self, text: str) -> list[float]:
        """The vector of one search query."""

    def encode_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per query, each encoded alone: a batch must not change a query's
        vector (``HybridRetriever`` calls ``encode_query`` once per text)."""
        return [self.encode_query(text) for text in texts]


class SparseEncoder(ABC):
    """Turns text into sparse term-weight vectors (SPLADE and friends)."""

    @property
    @abstractmethod
    def name(self) -> str:
        """Human-readable model name, used in error messages."""

    @abstractmethod
    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """One sparse vector per text, in order."""

    @abstractmethod
    def encode_query(self, text: str) -> SparseVector:
        """The sparse vector of one search query."""

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        """One sparse vector per query, each encoded alone: a batch must not change a
        query's vector (``HybridRetriever`` calls ``encode_query`` once per text)."""
        return [self.encode_query(text) for text in texts]


class LazyModel(Generic[ModelT]):
    """Loads a model on first use, once, even when many threads ask at the same time.

    Importing the package or building a retriever must stay cheap; the weights
    are only read when the first text is encoded.
    """

    def __init__(self, loader: Callable[[], ModelT]) -> None:
        self._loader = loader
        self._model: ModelT | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self) -> ModelT:
        model = self._model
        if model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._loader()
                model = self._model
        return model
