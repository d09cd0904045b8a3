"""What the retriever needs from an encoder, whatever model sits behind it.

Queries and documents are separate methods because asymmetric models encode
them differently (prompts, query-side expansion rules).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

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

    @property
    def runtime(self) -> str:
        """What runs the model (e.g. ``"onnx-int8"``): recorded with a collection and named
        in messages about it; encoders that know more override it."""
        return type(self).__name__

    def probe_vectors(self, texts: Sequence[str]) -> list[list[float]]:
        """The query vectors of ``texts``, computed once per encoder and kept: the model's
        fingerprint (see ``hybrid_retriever.model_record``). Query vectors, because a
        searching process has that path loaded already, and each is encoded alone."""
        return _probes(self, texts, self.encode_query)


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

    @property
    def runtime(self) -> str:
        """As :attr:`DenseEncoder.runtime`."""
        return type(self).__name__

    def probe_vectors(self, texts: Sequence[str]) -> list[SparseVector]:
        """As :meth:`DenseEncoder.probe_vectors`."""
        return _probes(self, texts, self.encode_query)


VectorT = TypeVar("VectorT")
_PROBES_LOCK = threading.Lock()


def _probes(
    encoder: Any, texts: Sequence[str], encode_one: Callable[[str], VectorT]
) -> list[VectorT]:
    """``encode_one`` of each text, cached on ``encoder`` by the texts (a one-time cost
    per encoder, not per query). Set lazily, so subclasses need not call ``__init__``."""
    key = tuple(texts)
    attributes = getattr(encoder, "__dict__", None)  # None: a class with __slots__, no cache
    with _PROBES_LOCK:
        cache: dict[tuple[str, ...], list[Any]] = (
            {} if attributes is None else attributes.setdefault("_probe_vectors", {})
        )
    found = cache.get(key)
    if found is None:
        found = [encode_one(text) for text in key]
        cache[key] = found
    return found


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
