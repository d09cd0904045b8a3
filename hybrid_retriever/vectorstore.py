"""``HybridVectorStore``: LangChain's ``VectorStore`` interface over a retriever's collection.

Code written against LangChain's ``VectorStore`` (its indexing API with a record manager,
chains that call ``similarity_search``, ...) can use the hybrid collection through this
class. It wraps a :class:`~hybrid_retriever.HybridRetriever` and shares its storage,
encoders and options, so it reads and writes exactly what the retriever does; results
are the documents as they were added (with their ids), scores the fused ones; the
relevance scores (``similarity_search_with_relevance_scores``) are ``_relevance``, in
[0, 1] and comparable across queries (:mod:`hybrid_retriever.relevance`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from typing_extensions import Self

from hybrid_retriever.arguments import check_arguments
from hybrid_retriever.documents import RESERVED_METADATA_KEYS
from hybrid_retriever.errors import CollectionNotFoundError, InvalidParameterError
from hybrid_retriever.ingestion import DEFAULT_BATCH_SIZE
from hybrid_retriever.mmr import DEFAULT_FETCH_K, DEFAULT_LAMBDA_MULT
from hybrid_retriever.relevance import RELEVANCE_KEY
from hybrid_retriever.retriever import HybridRetriever
from hybrid_retriever.search_options import SearchType
from hybrid_retriever.tenancy import check_rebinding

_WRITE_OPTIONS = frozenset({"batch_size", "show_progress"})


class HybridVectorStore(VectorStore):
    """A LangChain ``VectorStore`` over one hybrid collection.

    Pass a ``retriever=`` to share it, or the retriever's keyword arguments to build one::

        store = HybridVectorStore(collection_name="notes", path="./qdrant_data")
        store.add_documents([Document(id="food-01", page_content="Yeast makes bread rise.")])
        store.similarity_search("bread", k=1)[0].id  # 'food-01'
        retriever = store.as_retriever(k=10)         # a HybridRetriever

    An empty store (its collection not created yet) searches, reads and deletes nothing.
    Its first write creates the collection with dense, SPLADE and BM25 vectors; an existing
    collection is used as it was written (``bm25_encoder``: see :class:`HybridRetriever`).
    """

    def __init__(self, retriever: HybridRetriever | None = None, **kwargs: Any) -> None:
        if retriever is not None and kwargs:
            raise InvalidParameterError(
                f"Pass either retriever= or the retriever's arguments ({', '.join(kwargs)}), "
                "not both."
            )
        check_arguments(
            kwargs, HybridRetriever.argument_names() | {"retriever"}, where=type(self).__name__
        )
        self.retriever = retriever if retriever is not None else HybridRetriever(**kwargs)

    def __repr__(self) -> str:
        return (
            f"HybridVectorStore(collection_name={self.retriever.collection_name!r}, "
            f"storage={self.retriever.storage!r})"
        )

    @property
    def embeddings(self) -> Embeddings | None:
        """None: queries are encoded by each branch's encoder (see ``retriever``), not one
        Embeddings."""
        return None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool = True,
        **kwargs: Any,
    ) -> Self:
        """A store (``kwargs`` as for :class:`HybridRetriever`) holding ``texts``.
        ``embedding``, if given, is the dense encoder."""
        check_arguments(kwargs, _store_arguments(), where=f"{cls.__name__}.from_texts")
        if embedding is not None:
            kwargs["dense_encoder"] = embedding
        store = cls(**kwargs)
        store.add_texts(
            texts, metadatas, ids=ids, batch_size=batch_size, show_progress=show_progress
        )
        return store

    @classmethod
    def from_documents(
        cls, documents: list[Document], embedding: Embeddings | None = None, **kwargs: Any
    ) -> Self:
        """A store (``kwargs`` as for :class:`HybridRetriever`) holding ``documents``."""
        check_arguments(kwargs, _store_arguments(), where=f"{cls.__name__}.from_documents")
        write = {key: kwargs.pop(key) for key in _WRITE_OPTIONS | {"ids"} if key in kwargs}
        if embedding is not None:
            kwargs["dense_encoder"] = embedding
        store = cls(**kwargs)
        store.add_documents(documents, **write)
        return store

    def as_retriever(self, **kwargs: Any) -> HybridRetriever:  # type: ignore[override]
        """The :class:`HybridRetriever` over this collection, sharing the storage and
        encoders, with options (``k``, ``fusion``, ``filter``, ...) overridden by ``kwargs``
        or by LangChain's ``search_kwargs={...}``. ``search_type``: ``"similarity"`` (the
        hybrid ranking), ``"similarity_score_threshold"`` (the same, results with a
        ``_relevance`` below ``search_kwargs["score_threshold"]`` dropped) or ``"mmr"``
        (with ``fetch_k`` and ``lambda_mult`` in ``search_kwargs``). (Not a
        ``VectorStoreRetriever``, hence the override of the return type.)"""
        search_type = kwargs.pop("search_type", SearchType.SIMILARITY)
        search_kwargs = kwargs.pop("search_kwargs", None) or {}
        check_rebinding(self.retriever.tenancy, {**search_kwargs, **kwargs})
        if search_type == "similarity_score_threshold":
            if search_kwargs.get("score_threshold", kwargs.get("score_threshold")) is None:
                raise InvalidParameterError(
                    'search_type="similarity_score_threshold" needs a threshold: pass '
                    'search_kwargs={"score_threshold": 0.5} (a minimum _relevance in [0, 1]).'
                )
            search_type = SearchType.SIMILARITY
        elif search_type not in {t.value for t in SearchType}:
            raise InvalidParameterError(
                f"search_type={search_type!r} is not supported; the types are 'similarity', "
                "'similarity_score_threshold' and 'mmr'. Drop search_type, or pick a fusion "
                "with fusion=."
            )
        kwargs["search_type"] = SearchType(search_type)
        current = {
            name: getattr(self.retriever, name) for name in type(self.retriever).model_fields
        }
        return HybridRetriever(**{**current, **search_kwargs, **kwargs})

    def close(self) -> None:
        """Release the storage; see :meth:`HybridRetriever.close`."""
        self.retriever.close()

    # -- writing -----------------------------------------------------------------------------

    def add_documents(
        self, documents: list[Document], *, ids: list[str] | None = None, **kwargs: Any
    ) -> list[str]:
        """Index ``documents`` (ids: ``Document.id`` or ``ids=``); return their ids.
        Accepts ``batch_size`` and ``show_progress`` as :meth:`HybridRetriever.add_documents`."""
        return self.retriever.add_documents(documents, ids=ids, **_write_options(kwargs))

    async def aadd_documents(
        self, documents: list[Document], *, ids: list[str] | None = None, **kwargs: Any
    ) -> list[str]:
        """Async :meth:`add_documents`."""
        return await self.retriever.aadd_documents(documents, ids=ids, **_write_options(kwargs))

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Index plain texts; see :meth:`add_documents`."""
        return self.retriever.add_texts(texts, metadatas, ids=ids, **_write_options(kwargs))

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async :meth:`add_texts`."""
        return await self.retriever.aadd_texts(texts, metadatas, ids=ids, **_write_options(kwargs))

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete documents by id (the caller's or the point ids); unknown ids are ignored."""
        with contextlib.suppress(CollectionNotFoundError):  # nothing stored, nothing to delete
            self.retriever.delete(_ids_to_delete(ids, kwargs))
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Async :meth:`delete`."""
        with contextlib.suppress(CollectionNotFoundError):
            await self.retriever.adelete(_ids_to_delete(ids, kwargs))
        return True

    # -- reading -----------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents among ``ids``, in that order; unknown ids are left out."""
        try:
            return self.retriever.get_by_ids(ids)
        except CollectionNotFoundError:
            return []

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Async :meth:`get_by_ids`."""
        try:
            return await self.retriever.aget_by_ids(ids)
        except CollectionNotFoundError:
            return []

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """The ``k`` best documents by hybrid search; ``kwargs`` are search options
        (``filter``, ``fusion``, ``weights``, ...) as for ``HybridRetriever.invoke``."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search` with each document's fused score (higher is better)."""
        try:
            found = self.retriever.invoke(query, k=k, **kwargs)
        except CollectionNotFoundError:
            return []
        return [_as_added(doc) for doc in found]

    def similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search` with each document's ``_relevance``: in [0, 1], the
        same meaning for every query (``docs/relevance.md``). ``score_threshold=`` drops
        the documents below it; the others keep the fused order."""
        try:
            found = self.retriever.invoke(query, k=k, **kwargs)
        except CollectionNotFoundError:
            return []
        return [_with_relevance(doc) for doc in found]

    async def asimilarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async :meth:`similarity_search_with_relevance_scores`."""
        try:
            found = await self.retriever.ainvoke(query, k=k, **kwargs)
        except CollectionNotFoundError:
            return []
        return [_with_relevance(doc) for doc in found]

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """Async :meth:`similarity_search`."""
        return [doc for doc, _ in await self.asimilarity_search_with_score(query, k, **kwargs)]

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async :meth:`similarity_search_with_score`."""
        try:
            found = await self.retriever.ainvoke(query, k=k, **kwargs)
        except CollectionNotFoundError:
            return []
        return [_as_added(doc) for doc in found]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = DEFAULT_FETCH_K,
        lambda_mult: float = DEFAULT_LAMBDA_MULT,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents picked for relevance and diversity among the ``fetch_k`` best of
        the hybrid ranking (``lambda_mult``: 1 relevance only, 0 diversity only); see
        ``HybridRetriever.search_type``. ``kwargs`` are search options, as for
        :meth:`similarity_search`."""
        options = {"fetch_k": fetch_k, "lambda_mult": lambda_mult, **kwargs}
        return self.similarity_search(query, k, search_type=SearchType.MMR, **options)

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = DEFAULT_FETCH_K,
        lambda_mult: float = DEFAULT_LAMBDA_MULT,
        **kwargs: Any,
    ) -> list[Document]:
        """Async :meth:`max_marginal_relevance_search`."""
        options = {"fetch_k": fetch_k, "lambda_mult": lambda_mult, **kwargs}
        return await self.asimilarity_search(query, k, search_type=SearchType.MMR, **options)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = DEFAULT_FETCH_K,
        lambda_mult: float = DEFAULT_LAMBDA_MULT,
        **kwargs: Any,
    ) -> list[Document]:
        """Not available: the hybrid search needs the query's text (each branch encodes it
        its own way), not one embedding."""
        raise NotImplementedError(
            "HybridVectorStore searches from the query's text (dense, SPLADE and BM25 "
            "vectors of it); call max_marginal_relevance_search(query, ...) instead."
        )


def _store_arguments() -> frozenset[str]:
    """The keywords the constructor and ``from_texts`` / ``from_documents`` read."""
    return HybridRetriever.argument_names() | _WRITE_OPTIONS | {"retriever", "ids", "metadatas"}


def _write_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(kwargs) - _WRITE_OPTIONS)
    if unknown:
        raise InvalidParameterError(
            f"Unknown arguments {unknown} for adding documents; the options are "
            f"{sorted(_WRITE_OPTIONS)} (and ids=)."
        )
    return kwargs


def _ids_to_delete(ids: list[str] | None, kwargs: dict[str, Any]) -> list[str]:
    if kwargs:
        raise InvalidParameterError(f"Unknown arguments {sorted(kwargs)} for delete; pass ids=.")
    if ids is None:
        raise InvalidParameterError(
            "delete needs ids=; to remove every document, delete the collection itself "
            "(or use a new collection_name)."
        )
    return ids


def _as_added(doc: Document, score_key: str = "_score") -> tuple[Document, float]:
    """A search result as the document that was added, and its fused score (or another
    of its scores)."""
    metadata = {k: v for k, v in doc.metadata.items() if k not in RESERVED_METADATA_KEYS}
    return (
        Document(id=doc.id, page_content=doc.page_content, metadata=metadata),
        float(doc.metadata[score_key]),
    )


def _with_relevance(doc: Document) -> tuple[Document, float]:
    """A search result as the document that was added, and its relevance."""
    return _as_added(doc, RELEVANCE_KEY)
