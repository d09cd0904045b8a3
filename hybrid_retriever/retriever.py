"""``HybridRetriever``: SPLADE + dense (+ BM25) search in one Qdrant collection, fused
client-side.

The query path, top to bottom (:meth:`HybridRetriever._get_relevant_documents`):

1. validate the query and the per-call options (which branches, how many, how fused);
2. check once that the collection exists and fits the encoders;
3. encode the query with each selected branch's encoder;
4. search every selected named vector in one round trip, with the same filter;
5. fuse the ranked lists (see ``fusion/``; the default, ``fusion.config``, was chosen
   across a suite of corpora by ``benchmarks/fusion_study.py``);
6. return LangChain Documents with the caller's ids, that explain their rank: ``_id``
   (the point id), ``_score``, ``_ranks`` and ``_scores`` in the metadata.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import RunnableConfig, get_config_list
from pydantic import ConfigDict, PrivateAttr

from hybrid_retriever.arguments import check_arguments
from hybrid_retriever.collection import (
    CONTENT_KEY,
    METADATA_KEY,
    CollectionSpec,
    Distance,
    check_layout,
)
from hybrid_retriever.documents import document_id, documents_from_texts, lookup_point_ids
from hybrid_retriever.encoders.base import DenseEncoder, SparseEncoder
from hybrid_retriever.encoders.bm25 import Bm25Encoder
from hybrid_retriever.encoders.dense import as_dense_encoder
from hybrid_retriever.encoders.splade import as_sparse_encoder
from hybrid_retriever.encoders.threads import encode_side_by_side
from hybrid_retriever.errors import (
    CollectionNotFoundError,
    HybridRetrieverError,
    InvalidParameterError,
)
from hybrid_retriever.fusion.config import FusionConfig
from hybrid_retriever.fusion.methods import DEFAULT_FUSION, FusionMethod
from hybrid_retriever.fusion.rrf import DEFAULT_RRF_K, BranchHit, FusedHit
from hybrid_retriever.ingestion import DEFAULT_BATCH_SIZE, Indexer
from hybrid_retriever.model_catalog import DEFAULT_DENSE_MODEL, DEFAULT_SPARSE_MODEL
from hybrid_retriever.model_record import ModelCheckState, acheck_models, check_models
from hybrid_retriever.query_cache import (
    DEFAULT_QUERY_CACHE_SIZE,
    QueryVectorCache,
    check_cache_size,
)
from hybrid_retriever.runs import afinish_runs, astart_runs, finish_runs, start_runs
from hybrid_retriever.search_options import (
    BM25,
    BRANCHES,
    DENSE,
    SPARSE,
    SearchOptions,
    check_query,
    resolve_search_options,
)
from hybrid_retriever.storage.base import BranchQuery, ScoredPoint, StorageBackend, Vector
from hybrid_retriever.storage.connect import CONNECTION_ARGUMENTS, open_storage
from hybrid_retriever.stored_calibration import warn_if_calibrated
from hybrid_retriever.vector_checks import check_query_vector
from hybrid_retriever.vector_storage import VectorStorage, check_vector_storage


class HybridRetriever(BaseRetriever):
    """Hybrid learned-sparse (SPLADE) + dense retrieval over one Qdrant collection.

    Where the data lives, pick one (details in :mod:`hybrid_retriever.storage.connect`):

    * nothing, or ``path="./qdrant"``: embedded Qdrant Edge, on disk, or with no path in
      ``$HYBRID_RETRIEVER_PATH`` when set, else a temporary folder deleted on ``close()``
      (``engine="qdrant-client"`` picks qdrant-client's embedded mode);
    * ``url="http://..."`` with ``api_key=`` / ``prefer_grpc=``: a server or cluster;
    * ``client=`` a ``QdrantClient`` and/or ``async_client=`` an ``AsyncQdrantClient``;
    * ``storage=`` any :class:`~hybrid_retriever.storage.base.StorageBackend`.

    Encoders take a model short name, hub id or path, a LangChain ``Embeddings``
    (dense only), or an encoder object; models load on first use.

    BM25, a third branch, is opt-in: ``bm25_encoder=True`` (English), a language name,
    or a :class:`~hybrid_retriever.encoders.bm25.Bm25Encoder`. Like the other encoders it
    decides the collection's layout (a sparse vector ``bm25_vector_name`` with Qdrant's
    IDF modifier), so it is a constructor argument; ``branches=`` (here or per call)
    only chooses which of the retriever's branches a search fuses.

    Fusion: ``fusion=`` a :class:`~hybrid_retriever.FusionMethod` (convex by default),
    with ``weights`` / ``rrf_k`` / ``prefetch_k``; or ``fusion_config=`` the file (or
    ``FusionConfig``) that ``hybrid-retriever tune`` saved. Explicit arguments win.

    Example::

        retriever = HybridRetriever.from_texts(
            ["Qdrant stores vectors.", "SPLADE expands queries."],
            collection_name="notes", path="./qdrant_data",
        )
        retriever.invoke("what is SPLADE?", k=1)
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    collection_name: str = "documents"
    storage: StorageBackend
    dense_encoder: DenseEncoder
    sparse_encoder: SparseEncoder
    bm25_encoder: Bm25Encoder | None = None
    """The BM25 branch's encoder; None: no BM25 branch (the default)."""
    dense_vector_name: str = DENSE
    sparse_vector_name: str = SPARSE
    bm25_vector_name: str = BM25
    distance: Distance = Distance.COSINE
    vector_storage: VectorStorage | None = None
    """How a new collection keeps its dense vectors (quantisation, on disk; see
    :class:`~hybrid_retriever.VectorStorage`). None: the engine's default when creating,
    and the collection's own when opening; given for an existing collection, it must match."""
    k: int = 4
    """Documents returned per query; can also be passed per call: ``invoke(q, k=10)``."""
    prefetch_k: int | None = None
    """Candidates per branch before fusion; never below k. None: max(100, k)."""
    fusion: FusionMethod = DEFAULT_FUSION
    """How the branches' ranked lists are combined; see :class:`~hybrid_retriever.FusionMethod`."""
    rrf_k: float = DEFAULT_RRF_K
    """RRF constant in the paper's convention (ranks from 1); see ``fusion.rrf``."""
    weights: dict[str, float] | None = None
    """Per-branch weights, e.g. ``{"dense": 1.0, "sparse": 0.5, "bm25": 0.5}``; 0 skips a
    branch. RRF and DBSF multiply each branch's contribution, convex rescales them to sum
    to 1 (its alphas), adaptive multiplies them into its per-query confidences. None: for
    the default method, weights set per query from its length (``fusion/query_length.py``);
    equal for every other method."""
    filter: Any = None
    """A ``qdrant_client.models.Filter`` applied to every branch."""
    branches: tuple[str, ...] | None = None
    """The branches a search fuses, e.g. ``("dense", "bm25")``; also per call. None: all
    the retriever has (dense and sparse, and bm25 with ``bm25_encoder``)."""

    query_cache_size: int = DEFAULT_QUERY_CACHE_SIZE
    """Query vectors kept per branch in an LRU cache; 0 turns the cache off."""
    allow_model_mismatch: bool = False
    """Open (and write) a collection whose recorded models differ from the encoders, with a
    warning instead of ``CollectionMismatchError``; for vectors known to be interchangeable.
    The record keeps naming the models that built the collection."""

    _verified: bool = PrivateAttr(default=False)
    _model_state: ModelCheckState = PrivateAttr(default_factory=ModelCheckState)
    _query_cache: QueryVectorCache = PrivateAttr()
    _pool: ThreadPoolExecutor | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        check_arguments(data, type(self).argument_names(), where=type(self).__name__)
        data = _assemble(data)
        # Validate here rather than in pydantic validators, so that callers get the
        # package's own exception types instead of a pydantic ValidationError.
        resolve_search_options(
            k=data.get("k", 4),
            prefetch_k=data.get("prefetch_k"),
            fusion=data.get("fusion", DEFAULT_FUSION),
            rrf_k=data.get("rrf_k", DEFAULT_RRF_K),
            weights=data.get("weights"),
            query_filter=data.get("filter"),
            branches=data.get("branches"),
            available=_available_branches(data.get("bm25_encoder")),
        )
        if data.get("branches") is not None:
            data["branches"] = tuple(data["branches"])
        check_cache_size(data.get("query_cache_size", DEFAULT_QUERY_CACHE_SIZE))
        check_vector_storage(data.get("vector_storage"))
        super().__init__(**data)
        self._query_cache = QueryVectorCache(self.query_cache_size)

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def argument_names(cls) -> frozenset[str]:
        """Every keyword the constructor reads: the fields (LangChain's own, such as
        ``tags`` and ``metadata``, included), the connection arguments and ``fusion_config``.
        Any other is an error rather than silently ignored (``arguments.py``)."""
        return frozenset(cls.model_fields) | frozenset(CONNECTION_ARGUMENTS) | {"fusion_config"}

    @classmethod
    def from_documents(
        cls,
        documents: Iterable[Document],
        *,
        ids: Iterable[str | int | None] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool = True,
        **kwargs: Any,
    ) -> HybridRetriever:
        """Build a retriever (same keyword arguments as the constructor) and index ``documents``."""
        check_arguments(
            kwargs, cls.argument_names() | _WRITE_ARGUMENTS, where=f"{cls.__name__}.from_documents"
        )
        retriever = cls(**kwargs)
        retriever.add_documents(
            documents, ids=ids, batch_size=batch_size, show_progress=show_progress
        )
        return retriever

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        metadatas: Iterable[dict[str, Any]] | None = None,
        *,
        ids: Iterable[str | int | None] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool = True,
        **kwargs: Any,
    ) -> HybridRetriever:
        """Build a retriever (same keyword arguments as the constructor) and index ``texts``."""
        check_arguments(
            kwargs,
            cls.argument_names() | _WRITE_ARGUMENTS | {"metadatas"},
            where=f"{cls.__name__}.from_texts",
        )
        return cls.from_documents(
            documents_from_texts(texts, metadatas),
            ids=ids,
            batch_size=batch_size,
            show_progress=show_progress,
            **kwargs,
        )

    # -- the query path ----------------------------------------------------------------------

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return self._search([check_query(query)], self._options(kwargs))[0]

    def _search(self, texts: Sequence[str], options: SearchOptions) -> list[list[Document]]:
        """The query path for validated texts; ``invoke`` and ``batch`` both end up here."""
        self._check_collection_once()
        # 1. Vectors per branch: from the cache, or one encoding pass per encoder,
        #    the two encoders running at the same time.
        vectors = self._encode_queries(texts, options)
        # 2. Every branch of every query in one round trip, with the same filter.
        requests = self._branch_queries(vectors, len(texts), options)
        results = self.storage.search(
            self.collection_name, _flatten(requests), options.filter, routing=options.routing
        )
        branch_results = _regroup(requests, results)
        # 3. Fuse each query's branch lists.
        fused = [
            self._fuse(text, per_text, options)
            for text, per_text in zip(texts, branch_results, strict=True)
        ]
        # 4. Payloads: in the search results, or (in-process engines) fetched for the
        #    fused top k only, which is cheaper than decoding every candidate's.
        if self.storage.fetch_payloads_after_fusion:
            points = self.storage.retrieve(self.collection_name, _fused_ids(fused))
            payloads = {p.id: p.payload for p in points}
        else:
            payloads = _payloads_of(branch_results)
        return [_documents(hits, payloads) for hits in fused]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return (await self._asearch([check_query(query)], self._options(kwargs)))[0]

    async def _asearch(self, texts: Sequence[str], options: SearchOptions) -> list[list[Document]]:
        """:meth:`_search` for the event loop: the same steps, CPU work in worker threads."""
        if not self._verified:
            await self._averify_collection()
        vectors = await asyncio.to_thread(self._encode_queries, texts, options)
        requests = self._branch_queries(vectors, len(texts), options)
        results = await self.storage.asearch(
            self.collection_name, _flatten(requests), options.filter, routing=options.routing
        )
        branch_results = _regroup(requests, results)
        fused = [
            self._fuse(text, per_text, options)
            for text, per_text in zip(texts, branch_results, strict=True)
        ]
        if self.storage.fetch_payloads_after_fusion:
            points = await self.storage.aretrieve(self.collection_name, _fused_ids(fused))
            payloads = {p.id: p.payload for p in points}
        else:
            payloads = _payloads_of(branch_results)
        return [_documents(hits, payloads) for hits in fused]

    def _options(self, overrides: dict[str, Any]) -> SearchOptions:
        return resolve_search_options(
            k=self.k,
            prefetch_k=self.prefetch_k,
            fusion=self.fusion,
            rrf_k=self.rrf_k,
            weights=self.weights,
            query_filter=self.filter,
            branches=self.branches,
            available=_available_branches(self.bm25_encoder),
            overrides=overrides,
        )

    def _encode_queries(
        self, texts: Sequence[str], options: SearchOptions
    ) -> dict[str, list[Vector]]:
        """Each selected branch that counts (weight > 0): one vector per text.

        Cached vectors are reused; each of the rest is encoded alone (``encode_query``), so
        a query's vector depends on its text only, never on the batch or the cache, and
        ``batch``, ``invoke`` and ``ainvoke`` agree exactly whatever the CPU's kernels (see
        ``encoders/threads.py``). The sparse encoder works in a worker thread while the
        dense one runs here; BM25 (pure Python, microseconds) runs here after them.
        """
        encoders: dict[str, Callable[[str], Vector]] = {
            DENSE: self.dense_encoder.encode_query,
            SPARSE: self.sparse_encoder.encode_query,
        }
        names = {DENSE: self.dense_encoder.name, SPARSE: self.sparse_encoder.name}
        if self.bm25_encoder is not None:
            encoders[BM25] = self.bm25_encoder.encode_query
            names[BM25] = self.bm25_encoder.name
        cache = self._query_cache
        known: dict[str, dict[str, Vector]] = {}
        missing: dict[str, list[str]] = {}
        for branch in (b for b in options.branches if options.searches(b)):
            known[branch] = {}
            for text in dict.fromkeys(texts):
                vector = cache.get(branch, text)
                if vector is None:
                    missing.setdefault(branch, []).append(text)
                else:
                    known[branch][text] = vector

        def encode_missing(branch: str) -> list[Vector]:
            encode = encoders[branch]
            return [encode(text) for text in missing[branch]]

        encoded: dict[str, list[Vector]] = {}
        if DENSE in missing and SPARSE in missing:
            encoded[DENSE], encoded[SPARSE] = encode_side_by_side(
                functools.partial(encode_missing, DENSE),
                functools.partial(encode_missing, SPARSE),
                pool=self._encoding_pool(),
            )
        for branch in missing:
            if branch not in encoded:
                encoded[branch] = encode_missing(branch)
        for branch, todo in missing.items():
            for text, vector in zip(todo, encoded[branch], strict=True):
                # Checked before caching, so a bad vector is never served again.
                check_query_vector(vector, branch=branch, encoder=names[branch], query=text)
        for branch, todo in missing.items():
            for text, vector in zip(todo, encoded[branch], strict=True):
                cache.put(branch, text, vector)
                known[branch][text] = vector
        return {branch: [by_text[text] for text in texts] for branch, by_text in known.items()}

    def _branch_queries(
        self, vectors: dict[str, list[Vector]], n_texts: int, options: SearchOptions
    ) -> list[dict[str, BranchQuery]]:
        """Per text, one query per branch worth searching (a sparse vector with no terms
        matches nothing). Payloads come with the hits unless fetched after fusion."""
        names = {
            DENSE: self.dense_vector_name,
            SPARSE: self.sparse_vector_name,
            BM25: self.bm25_vector_name,
        }
        with_payload = not self.storage.fetch_payloads_after_fusion
        return [
            {
                branch: BranchQuery(
                    vector_name=names[branch],
                    vector=per_text[i],
                    limit=options.prefetch_k,
                    with_payload=with_payload,
                )
                for branch, per_text in vectors.items()
                if len(per_text[i]) > 0
            }
            for i in range(n_texts)
        ]

    def _fuse(
        self, text: str, results: Mapping[str, Sequence[ScoredPoint]], options: SearchOptions
    ) -> list[FusedHit]:
        """Fuse one query's branch results; branches not searched report no ranks."""
        return self._fuse_hits(text, results, options)

    def _fuse_hits(
        self, text: str, rankings: Mapping[str, Sequence[BranchHit]], options: SearchOptions
    ) -> list[FusedHit]:
        """The one fusion step of every search, the same :meth:`FusionConfig.fuse` that
        ``tune`` and the fusion study score: the branch lists as the search would have
        returned them (``prefetch_k`` deep, nothing from a branch of weight 0), fused."""
        config = FusionConfig(options.fusion, options.weights, options.rrf_k, options.prefetch_k)
        lists = {b: rankings.get(b, []) for b in options.branches}
        return config.fuse(lists, query=text, limit=options.k)

    def fuse_rankings(
        self, query: str, rankings: Mapping[str, Sequence[BranchHit]], **search_options: Any
    ) -> list[FusedHit]:
        """What ``invoke(query, **search_options)`` ranks, from branch lists searched once.

        ``rankings`` are ``query``'s hits per branch, best first, at least
        :meth:`search_depth` deep (``tuning.search_branches`` makes them). The options are
        resolved exactly as ``invoke`` resolves them, default weighting included, and the
        lists fused by the same step; so many option sets can be scored from one search.
        """
        self._check_collection_once()
        return self._fuse_hits(check_query(query), rankings, self._options(search_options))

    def search_depth(self, **search_options: Any) -> int:
        """Candidates per branch that ``invoke(query, **search_options)`` searches for."""
        return self._options(search_options).prefetch_k

    def _encoding_pool(self) -> ThreadPoolExecutor:
        with _POOL_LOCK:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="hybrid-retriever-encode")
            return self._pool

    # -- batches: one encoding pass per encoder, one Qdrant request --------------------------

    def batch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Search all ``inputs`` together; callbacks see one run per query, as with invoke."""
        if not inputs:
            return []
        runs = start_runs(self, inputs, get_config_list(config, len(inputs)), kwargs)
        plan = _BatchPlan.of(self, inputs, kwargs)
        if plan.texts and plan.options is not None:
            try:
                plan.record(self._search(plan.texts, plan.options))
            except Exception as exc:  # every query of the pass failed the same way
                plan.record([exc] * len(plan.texts))
        return finish_runs(runs, plan.outcomes, return_exceptions=return_exceptions)

    async def abatch(
        self,
        inputs: list[str],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Async :meth:`batch`."""
        if not inputs:
            return []
        runs = await astart_runs(self, inputs, get_config_list(config, len(inputs)), kwargs)
        plan = _BatchPlan.of(self, inputs, kwargs)
        if plan.texts and plan.options is not None:
            try:
                plan.record(await self._asearch(plan.texts, plan.options))
            except Exception as exc:
                plan.record([exc] * len(plan.texts))
        return await afinish_runs(runs, plan.outcomes, return_exceptions=return_exceptions)

    # -- the collection ----------------------------------------------------------------------

    def collection_spec(self) -> CollectionSpec:
        """What this retriever requires of its collection (loads the dense model)."""
        return CollectionSpec(
            name=self.collection_name,
            dense_vector_name=self.dense_vector_name,
            dense_size=self.dense_encoder.dimension,
            distance=self.distance,
            sparse_vector_name=self.sparse_vector_name,
            bm25_vector_name=self.bm25_vector_name if self.bm25_encoder is not None else None,
            storage=self.vector_storage,
        )

    def _checked_spec(self, layout: Any) -> CollectionSpec:
        """The spec, once the collection's layout is known to fit it."""
        if layout is None:
            from hybrid_retriever.storage.connect import missing_collection_message

            raise CollectionNotFoundError(
                missing_collection_message(self.storage, self.collection_name)
            )
        spec = self.collection_spec()
        check_layout(spec, layout, encoder_name=self.dense_encoder.name)
        return spec

    def _check_collection_once(self) -> None:
        """Before the first search: the collection exists, fits the encoders, and was
        written by their models (``model_record``)."""
        if not self._verified:
            spec = self._checked_spec(self.storage.get_layout(self.collection_name))
            check_models(
                self.storage,
                spec,
                self.dense_encoder,
                self.sparse_encoder,
                self.bm25_encoder,
                allow_mismatch=self.allow_model_mismatch,
                writing=False,
                state=self._model_state,
            )
            if self.weights is None:  # as the calibration was: only without weights
                warn_if_calibrated(self.storage, self.collection_name)
            self._verified = True

    async def _averify_collection(self) -> None:
        """Async :meth:`_check_collection_once` (the caller checks ``_verified``)."""
        spec = self._checked_spec(await self.storage.aget_layout(self.collection_name))
        await acheck_models(
            self.storage,
            spec,
            self.dense_encoder,
            self.sparse_encoder,
            self.bm25_encoder,
            allow_mismatch=self.allow_model_mismatch,
            writing=False,
            state=self._model_state,
        )
        if self.weights is None:  # as the calibration was: only without weights
            await asyncio.to_thread(warn_if_calibrated, self.storage, self.collection_name)
        self._verified = True

    def _indexer(self) -> Indexer:
        return Indexer(
            storage=self.storage,
            spec=self.collection_spec(),
            dense_encoder=self.dense_encoder,
            sparse_encoder=self.sparse_encoder,
            bm25_encoder=self.bm25_encoder,
            allow_model_mismatch=self.allow_model_mismatch,
            model_state=self._model_state,
        )

    # -- writing -----------------------------------------------------------------------------

    def add_documents(
        self,
        documents: Iterable[Document],
        *,
        ids: Iterable[str | int | None] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool = True,
    ) -> list[str]:
        """Index documents in batches (creating the collection if needed); return their ids.

        A document's id is its own (``Document.id`` or ``ids=``, as a str), stored with it
        and returned with every result; one without gets a deterministic id from its
        content. Point ids derive from these (see :mod:`hybrid_retriever.documents`), so
        indexing the same documents again overwrites instead of duplicating.
        """
        written = self._indexer().index(
            documents, ids=ids, batch_size=batch_size, show_progress=show_progress
        )
        self._verified = self._verified or bool(written)
        return written

    async def aadd_documents(
        self,
        documents: Iterable[Document],
        *,
        ids: Iterable[str | int | None] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool = True,
    ) -> list[str]:
        """Async :meth:`add_documents`."""
        indexer = await asyncio.to_thread(self._indexer)  # may load the dense model
        written = await indexer.aindex(
            documents, ids=ids, batch_size=batch_size, show_progress=show_progress
        )
        self._verified = self._verified or bool(written)
        return written

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Iterable[dict[str, Any]] | None = None,
        *,
        ids: Iterable[str | int | None] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool = True,
    ) -> list[str]:
        """Index plain texts with optional metadata; see :meth:`add_documents`."""
        return self.add_documents(
            documents_from_texts(texts, metadatas),
            ids=ids,
            batch_size=batch_size,
            show_progress=show_progress,
        )

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: Iterable[dict[str, Any]] | None = None,
        *,
        ids: Iterable[str | int | None] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool = True,
    ) -> list[str]:
        """Async :meth:`add_texts`."""
        return await self.aadd_documents(
            documents_from_texts(texts, metadatas),
            ids=ids,
            batch_size=batch_size,
            show_progress=show_progress,
        )

    def delete(self, ids: Iterable[str | int]) -> bool:
        """Delete documents by their ids (the caller's, as added, or those results carry).

        True once the deletion is done, as LangChain's ``VectorStore.delete``; unknown ids
        are ignored (still True: none of them is stored afterwards). Errors raise."""
        self.storage.delete(self.collection_name, _point_ids(ids))
        return True

    async def adelete(self, ids: Iterable[str | int]) -> bool:
        """Async :meth:`delete`."""
        await self.storage.adelete(self.collection_name, _point_ids(ids))
        return True

    # -- reading by id -----------------------------------------------------------------------

    def get_by_ids(self, ids: Iterable[str | int]) -> list[Document]:
        """The stored documents among ``ids`` (as for :meth:`delete`), in the order of
        ``ids``; unknown ids are left out."""
        candidates = lookup_point_ids(ids)
        points = self.storage.retrieve(self.collection_name, _unique(candidates))
        return _in_order(candidates, {p.id: p.payload for p in points})

    async def aget_by_ids(self, ids: Iterable[str | int]) -> list[Document]:
        """Async :meth:`get_by_ids`."""
        candidates = lookup_point_ids(ids)
        points = await self.storage.aretrieve(self.collection_name, _unique(candidates))
        return _in_order(candidates, {p.id: p.payload for p in points})

    def count(self) -> int:
        """Number of points in the collection."""
        return self.storage.count(self.collection_name)

    def close(self) -> None:
        """Release the storage (on-disk folders stay locked until this or process exit)."""
        with _POOL_LOCK:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.storage.close()


@dataclass
class _BatchPlan:
    """A validated batch: bad inputs already hold their error, valid ones await results."""

    outcomes: list[list[Document] | Exception]
    positions: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    options: SearchOptions | None = None

    @classmethod
    def of(
        cls, retriever: HybridRetriever, inputs: Sequence[Any], kwargs: dict[str, Any]
    ) -> _BatchPlan:
        try:
            options = retriever._options({k: v for k, v in kwargs.items() if k != "verbose"})
        except HybridRetrieverError as exc:  # the same bad option fails every query
            return cls(outcomes=[exc] * len(inputs))
        plan = cls(outcomes=[[] for _ in inputs], options=options)
        for position, query in enumerate(inputs):
            try:
                plan.texts.append(check_query(query))
                plan.positions.append(position)
            except HybridRetrieverError as exc:
                plan.outcomes[position] = exc
        return plan

    def record(self, found: Sequence[list[Document] | Exception]) -> None:
        """Put the search results of ``texts`` in their inputs' places."""
        for position, result in zip(self.positions, found, strict=True):
            self.outcomes[position] = result


_WRITE_ARGUMENTS = frozenset({"ids", "batch_size", "show_progress"})
"""The keywords of ``from_documents`` / ``from_texts`` besides the constructor's."""

_POOL_LOCK = threading.Lock()
"""Guards the lazy creation of each retriever's encoding thread (rare, so one lock for all)."""


def _assemble(data: dict[str, Any]) -> dict[str, Any]:
    """Turn the convenience arguments (connection, model names) into parts."""
    data = dict(data)
    config = data.pop("fusion_config", None)
    if config is not None:  # what `hybrid-retriever tune` saved; explicit arguments win
        if not isinstance(config, FusionConfig):
            config = FusionConfig.load(config)
        for key, value in config.retriever_kwargs().items():
            data.setdefault(key, value)
    connection = {key: data.pop(key) for key in CONNECTION_ARGUMENTS if key in data}
    if data.get("storage") is not None:
        if any(value is not None for value in connection.values()):
            raise InvalidParameterError(
                f"Pass either storage= or connection arguments ({', '.join(connection)}), not both."
            )
    else:
        collection = data.get(
            "collection_name", HybridRetriever.model_fields["collection_name"].default
        )
        data["storage"] = open_storage(**connection, collection=collection)
    data["dense_encoder"] = as_dense_encoder(data.get("dense_encoder", DEFAULT_DENSE_MODEL))
    data["sparse_encoder"] = as_sparse_encoder(data.get("sparse_encoder", DEFAULT_SPARSE_MODEL))
    data["bm25_encoder"] = _as_bm25_encoder(data.get("bm25_encoder"))
    return data


def _as_bm25_encoder(value: Any) -> Bm25Encoder | None:
    """``bm25_encoder=``: None/False (no BM25 branch), True (English), a language, or an
    encoder."""
    if value is None or value is False:
        return None
    if value is True:
        return Bm25Encoder()
    if isinstance(value, str):
        return Bm25Encoder(language=value)
    if isinstance(value, Bm25Encoder):
        return value
    raise InvalidParameterError(
        "bm25_encoder must be True (English BM25), a language such as 'german', or a "
        f"Bm25Encoder(k1=..., b=...), not {type(value).__name__}."
    )


def _available_branches(bm25_encoder: Any) -> tuple[str, ...]:
    """The branches a retriever can search: the two it always has, and BM25 if it has one."""
    return (*BRANCHES, BM25) if bm25_encoder not in (None, False) else BRANCHES


def _flatten(requests: Sequence[Mapping[str, BranchQuery]]) -> list[BranchQuery]:
    return [query for per_text in requests for query in per_text.values()]


def _regroup(
    requests: Sequence[Mapping[str, BranchQuery]], results: Sequence[list[ScoredPoint]]
) -> list[dict[str, list[ScoredPoint]]]:
    """The flat list of results back into one {branch: hits} per text, in request order."""
    flat = iter(results)
    return [{branch: next(flat) for branch in per_text} for per_text in requests]


def _fused_ids(fused: Sequence[Sequence[FusedHit]]) -> list[str]:
    return list(dict.fromkeys(hit.id for hits in fused for hit in hits))


def _payloads_of(
    results: Sequence[Mapping[str, Sequence[ScoredPoint]]],
) -> dict[str, dict[str, Any]]:
    return {p.id: p.payload for per_text in results for points in per_text.values() for p in points}


def _documents(hits: Sequence[FusedHit], payloads: dict[str, dict[str, Any]]) -> list[Document]:
    """LangChain Documents that explain their rank. A hit whose point was deleted between
    the search and the payload lookup is dropped rather than returned empty."""
    documents = []
    for hit in hits:
        payload = payloads.get(hit.id)
        if payload is None:
            continue
        metadata = dict(payload.get(METADATA_KEY) or {})
        metadata.update(_id=hit.id, _score=hit.score, _ranks=hit.ranks, _scores=hit.scores)
        documents.append(
            Document(
                id=document_id(hit.id, payload),
                page_content=payload.get(CONTENT_KEY) or "",
                metadata=metadata,
            )
        )
    return documents


def _stored_document(point_id: str, payload: Mapping[str, Any]) -> Document:
    """A stored point as the Document that was added (no search annotations)."""
    return Document(
        id=document_id(point_id, payload),
        page_content=payload.get(CONTENT_KEY) or "",
        metadata=dict(payload.get(METADATA_KEY) or {}),
    )


def _unique(candidates: Sequence[Sequence[str]]) -> list[str]:
    return list(dict.fromkeys(pid for per_id in candidates for pid in per_id))


def _in_order(
    candidates: Sequence[Sequence[str]], payloads: Mapping[str, Mapping[str, Any]]
) -> list[Document]:
    """The found points as Documents, in the order of the ids asked for, each once."""
    seen: set[str] = set()
    documents = []
    for per_id in candidates:
        for pid in per_id:
            if pid in payloads and pid not in seen:
                seen.add(pid)
                documents.append(_stored_document(pid, payloads[pid]))
    return documents


def _point_ids(ids: Iterable[str | int]) -> list[str]:
    """Every point the ids may name (see ``documents.lookup_point_ids``)."""
    return _unique(lookup_point_ids(ids))
