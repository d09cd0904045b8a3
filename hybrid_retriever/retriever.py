"""``HybridRetriever``: SPLADE + dense (+ BM25) search in one Qdrant collection, fused
client-side.

The query path, top to bottom (:meth:`HybridRetriever._get_relevant_documents`):

1. validate the query and the per-call options (which branches, how many, how fused),
   against the branches the collection has (looked at once: ``bm25_encoder="auto"``);
2. check once that the collection exists and fits the encoders;
3. encode the query with each selected branch's encoder;
4. search every selected named vector in one round trip, with the same filter;
5. fuse the ranked lists (see ``fusion/``; the default, ``fusion.config``, was chosen
   across a suite of corpora by ``benchmarks/fusion_study.py``); with ``group_by``, a
   query whose ranking holds too few sources is searched again, deeper;
6. pick what to return: a page of the ranking (``offset``, ``k``), one hit per source
   (``grouping``), or a diverse selection (``search_type="mmr"``, ``mmr``);
7. return LangChain Documents with the caller's ids, that explain their rank: ``_id``
   (the point id), ``_score``, ``_ranks`` and ``_scores`` in the metadata; and
   ``_relevance``, in [0, 1] and comparable across queries (``relevance.py``), which
   ``score_threshold`` filters on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
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
from hybrid_retriever.bm25_setting import (
    AUTO,
    COPY_HINT,
    Bm25Setting,
    as_bm25_setting,
    bm25_for_collection,
    is_pending,
)
from hybrid_retriever.collection import (
    CONTENT_KEY,
    METADATA_KEY,
    CollectionLayout,
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
from hybrid_retriever.grouping import DEFAULT_GROUP_BY, first_per_group, group_value
from hybrid_retriever.ingestion import DEFAULT_BATCH_SIZE, Indexer
from hybrid_retriever.mmr import DEFAULT_LAMBDA_MULT, mmr_order
from hybrid_retriever.model_catalog import DEFAULT_DENSE_MODEL, DEFAULT_SPARSE_MODEL
from hybrid_retriever.model_record import ModelCheckState, acheck_models, check_models
from hybrid_retriever.precomputed import (
    DEFAULT_EMBEDDED_BATCH_SIZE,
    EmbeddedDocument,
    EmbeddedWriter,
)
from hybrid_retriever.query_cache import (
    DEFAULT_QUERY_CACHE_SIZE,
    QueryVectorCache,
    check_cache_size,
)
from hybrid_retriever.relevance import RELEVANCE_KEY, floors, query_scales, relevance
from hybrid_retriever.runs import afinish_runs, astart_runs, finish_runs, start_runs
from hybrid_retriever.search_options import (
    BM25,
    BRANCHES,
    DENSE,
    MAX_K,
    SPARSE,
    SearchOptions,
    SearchType,
    check_query,
    resolve_search_options,
)
from hybrid_retriever.storage.base import (
    BranchQuery,
    ScoredPoint,
    StorageBackend,
    StoredPoint,
    Vector,
)
from hybrid_retriever.storage.connect import CONNECTION_ARGUMENTS, open_storage
from hybrid_retriever.stored_calibration import warn_if_calibrated
from hybrid_retriever.tenancy import DEFAULT_TENANT_KEY, Tenancy, tenancy_of
from hybrid_retriever.vector_checks import check_query_vector
from hybrid_retriever.vector_storage import VectorStorage, check_vector_storage

logger = logging.getLogger(__name__)


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

    BM25, the third branch, is on for new collections: ``bm25_encoder`` unset creates
    a collection with dense, SPLADE and BM25 vectors (a default
    :class:`~hybrid_retriever.encoders.bm25.Bm25Encoder`), and opens an existing one as it
    was written: with BM25 at the settings its model record holds (a collection written
    with ``k1=0.9`` keeps it), or with its two branches if it has no BM25 vector (logged
    once at INFO; ``hybrid_retriever.add_bm25.copy_with_bm25`` copies it into a collection
    with one). ``bm25_encoder=True`` requires BM25 (a collection without it raises
    ``CollectionMismatchError``), a language name or a ``Bm25Encoder`` requires those
    settings, ``False`` turns BM25 off (see :mod:`hybrid_retriever.bm25_setting`). Like the
    other encoders it decides the collection's layout (a sparse vector
    ``bm25_vector_name`` with Qdrant's IDF modifier), so it is a constructor argument;
    ``branches=`` (here or per call) only chooses which of the retriever's branches a
    search fuses.

    Fusion: ``fusion=`` a :class:`~hybrid_retriever.FusionMethod` (convex by default),
    with ``weights`` / ``rrf_k`` / ``prefetch_k``; or ``fusion_config=`` the file (or
    ``FusionConfig``) that ``hybrid-retriever tune`` saved. Explicit arguments win.

    Tenants: ``tenant="acme"`` confines every search, read, write, delete and count to the
    documents whose ``metadata[tenant_key]`` (default ``"tenant"``) is ``"acme"``, whatever
    filter or ids a call passes (:mod:`hybrid_retriever.tenancy`).

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
    bm25_encoder: Bm25Setting = AUTO
    """The BM25 branch's encoder; None: no BM25 branch. ``"auto"`` (the default) and
    ``True`` become one or the other when the collection is first used (a search or a
    write): see the class docstring."""
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
    the retriever has (dense and sparse, and bm25 unless its collection has none or
    ``bm25_encoder=False``)."""
    offset: int = 0
    """Results of the ranking skipped before the k returned: ``invoke(q, k=4, offset=8)``
    returns results 9 to 12. Each branch is searched ``offset + k`` deep at least."""
    group_by: str | bool | None = DEFAULT_GROUP_BY
    """One result per source: the best-ranked hit of each distinct value of this metadata
    path (``"metadata.author"``), and ``k`` counts sources. The default groups the chunks
    of a document (their ``source_id``); a document without the key is a source of its
    own, so whole documents are unaffected. None or False: every chunk."""
    search_type: SearchType = SearchType.SIMILARITY
    """``"similarity"``: the fused ranking; ``"mmr"``: maximal marginal relevance over its
    top ``fetch_k`` (relevance: the fused scores rescaled to [0, 1]; redundancy: cosine
    of the stored dense vectors), with ``lambda_mult`` from 0 (diversity) to 1."""
    fetch_k: int | None = None
    """MMR's candidates; None: 20, or offset + k if more."""
    lambda_mult: float = DEFAULT_LAMBDA_MULT
    """MMR's balance: 1 is the relevance order, 0 diversity only."""

    tenant: str | int | None = None
    """Bind the retriever to one tenant: every search, read, write and delete is confined
    to documents whose ``metadata[tenant_key]`` is this value (see ``tenancy``)."""
    tenant_key: str = DEFAULT_TENANT_KEY
    """The metadata key that holds a document's tenant (payload ``metadata.<tenant_key>``)."""
    score_threshold: float | None = None
    """Drop results whose ``_relevance`` (in [0, 1], comparable across queries) is below
    it; also per call. None: keep all. ``docs/relevance.md`` gives the recommended value."""

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
    _bm25_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

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
            offset=data.get("offset", 0),
            group_by=data.get("group_by", DEFAULT_GROUP_BY),
            search_type=data.get("search_type", SearchType.SIMILARITY),
            fetch_k=data.get("fetch_k"),
            lambda_mult=data.get("lambda_mult", DEFAULT_LAMBDA_MULT),
            score_threshold=data.get("score_threshold"),
        )
        if data.get("branches") is not None:
            data["branches"] = tuple(data["branches"])
        check_cache_size(data.get("query_cache_size", DEFAULT_QUERY_CACHE_SIZE))
        tenancy = tenancy_of(data.get("tenant"), data.get("tenant_key"))
        data["tenant_key"] = tenancy.key if tenancy is not None else DEFAULT_TENANT_KEY
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
        # 2-3. Search every branch of every query in one round trip, with the same filter,
        #      and fuse each query's lists (again, deeper, where group_by needs it).
        rankings: dict[int, _Ranking] = {}
        keys = not self._group_keys_later(options)
        self._search_rounds(texts, range(len(texts)), vectors, options, rankings, keys=keys)
        # 4. The hits to return, their payloads (in the search results, or fetched for
        #    them only where that is cheaper than decoding every candidate's) and, for
        #    MMR, their dense vectors.
        picked, points = self._pick(texts, rankings, options)
        if not keys:
            # Group keys were left out of the search (most collections hold no chunks);
            # a query whose picked hits repeat a source is ranked again with them.
            again = _repeating_sources(picked, points, options)
            if again:
                self._search_rounds(texts, again, vectors, options, rankings, keys=True)
                picked, points = self._pick(texts, rankings, options)
        return self._results(picked, rankings, points, options, vectors)

    def _search_rounds(
        self,
        texts: Sequence[str],
        todo: Iterable[int],
        vectors: dict[str, list[Vector]],
        options: SearchOptions,
        rankings: dict[int, _Ranking],
        *,
        keys: bool,
    ) -> None:
        """Search and fuse the texts ``todo`` into ``rankings``, ``prefetch_k`` deep, then
        twice as deep for those short of sources; ``keys``: with the group_by key."""
        pending, depth = list(todo), options.prefetch_k
        while pending:
            requests = self._branch_queries(vectors, pending, options, depth, keys=keys)
            results = self.storage.search(
                self.collection_name, _flatten(requests), options.filter, routing=options.routing
            )
            found = _regroup(requests, results)
            pending = self._rank(texts, pending, found, options, depth, rankings)
            depth = min(2 * depth, MAX_K)

    def _pick(
        self, texts: Sequence[str], rankings: Mapping[int, _Ranking], options: SearchOptions
    ) -> tuple[list[list[FusedHit]], list[StoredPoint] | None]:
        """Each text's candidates, and their stored points where the engine returns
        payloads after fusion (or MMR needs the dense vectors)."""
        picked = [rankings[i].candidates(options) for i in range(len(texts))]
        if not self._reads_points_after_fusion(options):
            return picked, None
        points = self.storage.retrieve(
            self.collection_name, _fused_ids(picked), with_vectors=self._vectors_for(options)
        )
        return picked, points

    def _reads_points_after_fusion(self, options: SearchOptions) -> bool:
        """Whether the picked hits are read back: their payloads (engines that fetch them
        after fusion) or, for MMR, their dense vectors."""
        return self.storage.fetch_payloads_after_fusion or options.search_type is SearchType.MMR

    def _group_keys_later(self, options: SearchOptions) -> bool:
        """Whether group_by keys are read from the picked hits' payloads first, instead of
        coming with every candidate (a key per candidate costs ~2 ms a query on Edge)."""
        return options.group_by is not None and self.storage.fetch_payloads_after_fusion

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        texts = [check_query(query)]
        return (await self._asearch(texts, await self._aoptions(kwargs)))[0]

    async def _asearch(self, texts: Sequence[str], options: SearchOptions) -> list[list[Document]]:
        """:meth:`_search` for the event loop: the same steps, CPU work in worker threads."""
        if not self._verified:
            await self._averify_collection()
        vectors = await asyncio.to_thread(self._encode_queries, texts, options)
        rankings: dict[int, _Ranking] = {}
        keys = not self._group_keys_later(options)
        await self._asearch_rounds(texts, range(len(texts)), vectors, options, rankings, keys=keys)
        picked, points = await self._apick(texts, rankings, options)
        if not keys:
            again = _repeating_sources(picked, points, options)
            if again:
                await self._asearch_rounds(texts, again, vectors, options, rankings, keys=True)
                picked, points = await self._apick(texts, rankings, options)
        return self._results(picked, rankings, points, options, vectors)

    async def _asearch_rounds(
        self,
        texts: Sequence[str],
        todo: Iterable[int],
        vectors: dict[str, list[Vector]],
        options: SearchOptions,
        rankings: dict[int, _Ranking],
        *,
        keys: bool,
    ) -> None:
        """Async :meth:`_search_rounds`."""
        pending, depth = list(todo), options.prefetch_k
        while pending:
            requests = self._branch_queries(vectors, pending, options, depth, keys=keys)
            results = await self.storage.asearch(
                self.collection_name, _flatten(requests), options.filter, routing=options.routing
            )
            found = _regroup(requests, results)
            pending = self._rank(texts, pending, found, options, depth, rankings)
            depth = min(2 * depth, MAX_K)

    async def _apick(
        self, texts: Sequence[str], rankings: Mapping[int, _Ranking], options: SearchOptions
    ) -> tuple[list[list[FusedHit]], list[StoredPoint] | None]:
        """Async :meth:`_pick`."""
        picked = [rankings[i].candidates(options) for i in range(len(texts))]
        if not self._reads_points_after_fusion(options):
            return picked, None
        points = await self.storage.aretrieve(
            self.collection_name, _fused_ids(picked), with_vectors=self._vectors_for(options)
        )
        return picked, points

    def _rank(
        self,
        texts: Sequence[str],
        todo: Sequence[int],
        results: Sequence[Mapping[str, Sequence[ScoredPoint]]],
        options: SearchOptions,
        depth: int,
        rankings: dict[int, _Ranking],
    ) -> list[int]:
        """Fuse the branch lists of the texts ``todo``, searched ``depth`` deep (first
        ``prefetch_k``, then twice as deep each round), into ``rankings``; return the
        texts to search again, deeper: those whose ranking holds fewer sources than
        ``group_by`` needs while a branch may hold more (it returned all it was asked)."""
        again = []
        searched = replace(options, prefetch_k=depth)
        for i, per_text in zip(todo, results, strict=True):
            # Only the hits a page can use get built (a FusedHit per candidate costs
            # about 1 ms a query); all of them only when group_by finds too few sources.
            hits = self._fuse(texts[i], per_text, searched, limit=_needed(options))
            ranking = _Ranking(
                hits=hits,
                payloads=_payloads_of([per_text]),
                exhausted=all(len(hits) < depth for hits in per_text.values()),
                floors=floors(per_text),
            )
            if len(hits) == _needed(options) and ranking.short_of_sources(options, cut=True):
                ranking = replace(ranking, hits=self._fuse(texts[i], per_text, searched))
            rankings[i] = ranking
            if depth < MAX_K and ranking.short_of_sources(options):
                again.append(i)
        return again

    def _vectors_for(self, options: SearchOptions) -> list[str] | bool:
        """The stored vectors the picked hits are read with: MMR compares dense ones."""
        return [self.dense_vector_name] if options.search_type is SearchType.MMR else False

    def _results(
        self,
        picked: Sequence[Sequence[FusedHit]],
        rankings: Mapping[int, _Ranking],
        points: Sequence[StoredPoint] | None,
        options: SearchOptions,
        vectors: Mapping[str, Sequence[Vector]],
    ) -> list[list[Document]]:
        """Each text's Documents: its page of ``picked``, or MMR's page of them, each with
        its ``_relevance``; those below ``score_threshold`` dropped (the rest in order)."""
        fetched = {p.id: p.payload for p in points or ()}
        dense = {p.id: p.vectors.get(self.dense_vector_name) for p in points or ()}
        documents = []
        for i, hits in enumerate(picked):
            if options.search_type is SearchType.MMR:
                hits = mmr_order(
                    hits, dense, lambda_mult=options.lambda_mult, limit=options.offset + options.k
                )
            page = hits[options.offset : options.offset + options.k]
            scales = query_scales({branch: per_text[i] for branch, per_text in vectors.items()})
            bounds = {branch: rankings[i].floors.get(branch, 0.0) for branch in scales}
            found = _documents(
                page,
                rankings[i].payloads if points is None else fetched,
                [relevance(hit, scales, bounds) for hit in page],
            )
            if options.score_threshold is not None:
                found = [d for d in found if d.metadata[RELEVANCE_KEY] >= options.score_threshold]
            documents.append(found)
        return documents

    @property
    def tenancy(self) -> Tenancy | None:
        """The tenant this retriever is bound to (``tenant=``), or None."""
        return None if self.tenant is None else Tenancy(self.tenant_key, self.tenant)

    def _options(self, overrides: dict[str, Any]) -> SearchOptions:
        """The per-call ``overrides`` over the retriever's options, validated against the
        branches its collection has: ``bm25_encoder="auto"`` is resolved first (once)."""
        self._resolve_bm25()
        return self._options_for(overrides)

    async def _aoptions(self, overrides: dict[str, Any]) -> SearchOptions:
        """Async :meth:`_options`: the collection is looked at with the async client."""
        await self._aresolve_bm25()
        return self._options_for(overrides)

    def _options_for(self, overrides: dict[str, Any]) -> SearchOptions:
        """:meth:`_options` with the branches as they stand (a collection not created yet
        is assumed to get BM25, as a write would create it)."""
        options = resolve_search_options(
            k=self.k,
            prefetch_k=self.prefetch_k,
            fusion=self.fusion,
            rrf_k=self.rrf_k,
            weights=self.weights,
            query_filter=self.filter,
            branches=self.branches,
            available=_available_branches(self.bm25_encoder),
            overrides=overrides,
            offset=self.offset,
            group_by=self.group_by,
            search_type=self.search_type,
            fetch_k=self.fetch_k,
            lambda_mult=self.lambda_mult,
            score_threshold=self.score_threshold,
        )
        tenancy = self.tenancy
        if tenancy is None:
            return options
        return dataclasses.replace(options, filter=tenancy.confine(options.filter))

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
        bm25 = self._bm25()
        if bm25 is not None:
            encoders[BM25] = bm25.encode_query
            names[BM25] = bm25.name
        cache = self._query_cache
        known: dict[str, dict[str, Vector]] = {}
        missing: dict[str, list[str]] = {}
        for branch in (b for b in options.branches if options.searches(b)):
            if branch not in encoders:  # created without BM25 since the options were checked
                raise InvalidParameterError(
                    f"Collection {self.collection_name!r} was created without a BM25 vector "
                    "while this search began; search again (it then uses the branches the "
                    f"collection has), or add one: {COPY_HINT}."
                )
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
        self,
        vectors: dict[str, list[Vector]],
        todo: Sequence[int],
        options: SearchOptions,
        depth: int,
        *,
        keys: bool,
    ) -> list[dict[str, BranchQuery]]:
        """Per text of ``todo``, one query per branch worth searching (a sparse vector with
        no terms matches nothing), ``depth`` deep. Payloads come with the hits unless
        fetched after fusion; then only the ``group_by`` key, with ``keys``."""
        names = {
            DENSE: self.dense_vector_name,
            SPARSE: self.sparse_vector_name,
            BM25: self.bm25_vector_name,
        }
        with_payload: bool | tuple[str, ...] = not self.storage.fetch_payloads_after_fusion
        if not with_payload and keys and options.group_by is not None:
            with_payload = (options.group_by,)
        return [
            {
                branch: BranchQuery(
                    vector_name=names[branch],
                    vector=per_text[i],
                    limit=depth,
                    with_payload=with_payload,
                )
                for branch, per_text in vectors.items()
                if len(per_text[i]) > 0
            }
            for i in todo
        ]

    def _fuse(
        self,
        text: str,
        results: Mapping[str, Sequence[ScoredPoint]],
        options: SearchOptions,
        *,
        limit: int | None = None,
    ) -> list[FusedHit]:
        """Fuse one query's branch results, the best ``limit`` (None: every candidate)
        ranked; branches not searched report no ranks."""
        return self._fuse_hits(text, results, options, limit=limit)

    def _fuse_hits(
        self,
        text: str,
        rankings: Mapping[str, Sequence[BranchHit]],
        options: SearchOptions,
        *,
        limit: int | None,
    ) -> list[FusedHit]:
        """The one fusion step of every search, the same :meth:`FusionConfig.fuse` that
        ``tune`` and the fusion study score: the branch lists as the search would have
        returned them (``prefetch_k`` deep, nothing from a branch of weight 0), fused."""
        config = FusionConfig(options.fusion, options.weights, options.rrf_k, options.prefetch_k)
        lists = {b: rankings.get(b, []) for b in options.branches}
        return config.fuse(lists, query=text, limit=limit)

    def fuse_rankings(
        self, query: str, rankings: Mapping[str, Sequence[BranchHit]], **search_options: Any
    ) -> list[FusedHit]:
        """What ``invoke(query, **search_options)`` ranks, from branch lists searched once.

        ``rankings`` are ``query``'s hits per branch, best first, at least
        :meth:`search_depth` deep (``tuning.search_branches`` makes them). The options are
        resolved exactly as ``invoke`` resolves them, default weighting included, and the
        lists fused by the same step; so many option sets can be scored from one search.
        The page (``offset``) is applied; ``group_by`` and MMR, which need the payloads and
        vectors, are not.
        """
        self._check_collection_once()
        options = self._options(search_options)
        fused = self._fuse_hits(
            check_query(query), rankings, options, limit=options.offset + options.k
        )
        return fused[options.offset :]

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
        plan = _BatchPlan.of(self._options, inputs, kwargs)
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
        plan = await _BatchPlan.aof(self, inputs, kwargs)
        if plan.texts and plan.options is not None:
            try:
                plan.record(await self._asearch(plan.texts, plan.options))
            except Exception as exc:
                plan.record([exc] * len(plan.texts))
        return await afinish_runs(runs, plan.outcomes, return_exceptions=return_exceptions)

    # -- the collection ----------------------------------------------------------------------

    def collection_spec(self) -> CollectionSpec:
        """What this retriever requires of its collection (loads the dense model). Until
        ``bm25_encoder="auto"`` is resolved, with the BM25 vector a new collection gets."""
        return CollectionSpec(
            name=self.collection_name,
            dense_vector_name=self.dense_vector_name,
            dense_size=self.dense_encoder.dimension,
            distance=self.distance,
            sparse_vector_name=self.sparse_vector_name,
            bm25_vector_name=self.bm25_vector_name if self.bm25_encoder is not None else None,
            storage=self.vector_storage,
        )

    def available_branches(self) -> tuple[str, ...]:
        """Every branch this retriever can search on its collection (``bm25_encoder="auto"``
        settled where the collection exists; one not created yet counts BM25, which a
        write would give it), whatever ``branches=`` a default search is limited to."""
        self._resolve_bm25()
        return _available_branches(self.bm25_encoder)

    def settled_bm25_encoder(self, *, creating: bool = False) -> Bm25Encoder | None:
        """The BM25 encoder this retriever uses on its collection, ``bm25_encoder="auto"``
        settled first; None: no BM25 branch. While the collection does not exist: None,
        unless ``creating`` (a write creates it with BM25)."""
        self._resolve_bm25(creating=creating)
        return self._bm25()

    def _bm25(self) -> Bm25Encoder | None:
        """The BM25 encoder, once resolved; None without BM25 (or still pending)."""
        return self.bm25_encoder if isinstance(self.bm25_encoder, Bm25Encoder) else None

    def _resolve_bm25(self, *, creating: bool = False) -> None:
        """Turn a pending ``bm25_encoder`` ("auto" or True) into what the collection calls
        for (``bm25_setting.bm25_for_collection``), once. While the collection does not
        exist it stays pending, unless ``creating``: a write creates it with BM25."""
        if not is_pending(self.bm25_encoder):
            return
        with self._bm25_lock:
            if not is_pending(self.bm25_encoder):
                return
            layout = self.storage.get_layout(self.collection_name)
            record = (
                self.storage.read_collection_record(self.collection_name)
                if layout is not None and self.bm25_vector_name in layout.sparse
                else None
            )
            self._settle_bm25(layout, record, creating=creating)

    async def _aresolve_bm25(self, *, creating: bool = False) -> None:
        """Async :meth:`_resolve_bm25`."""
        if not is_pending(self.bm25_encoder):
            return
        layout = await self.storage.aget_layout(self.collection_name)
        record = (
            await self.storage.aread_collection_record(self.collection_name)
            if layout is not None and self.bm25_vector_name in layout.sparse
            else None
        )
        with self._bm25_lock:
            if is_pending(self.bm25_encoder):
                self._settle_bm25(layout, record, creating=creating)

    def _settle_bm25(self, layout: CollectionLayout | None, record: Any, *, creating: bool) -> None:
        """The one place a pending ``bm25_encoder`` changes (under ``_bm25_lock``)."""
        setting = self.bm25_encoder
        if (layout is None and not creating) or not is_pending(setting):
            return
        chosen = bm25_for_collection(
            setting,
            layout,
            record,
            vector_name=self.bm25_vector_name,
            where=f"collection {self.collection_name!r} in {self.storage!r}",
        )
        if chosen is None:
            logger.info(
                "Collection %r has no BM25 vector (it was written without BM25): searching "
                "its dense and SPLADE branches. %s.",
                self.collection_name,
                COPY_HINT,
            )
        self.bm25_encoder = chosen

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
            self._resolve_bm25()  # already done by _options, unless created since
            spec = self._checked_spec(self.storage.get_layout(self.collection_name))
            check_models(
                self.storage,
                spec,
                self.dense_encoder,
                self.sparse_encoder,
                self._bm25(),
                allow_mismatch=self.allow_model_mismatch,
                writing=False,
                state=self._model_state,
            )
            if self.weights is None:  # as the calibration was: only without weights
                warn_if_calibrated(self.storage, self.collection_name)
            self._verified = True

    async def _averify_collection(self) -> None:
        """Async :meth:`_check_collection_once` (the caller checks ``_verified``)."""
        await self._aresolve_bm25()
        spec = self._checked_spec(await self.storage.aget_layout(self.collection_name))
        await acheck_models(
            self.storage,
            spec,
            self.dense_encoder,
            self.sparse_encoder,
            self._bm25(),
            allow_mismatch=self.allow_model_mismatch,
            writing=False,
            state=self._model_state,
        )
        if self.weights is None:  # as the calibration was: only without weights
            await asyncio.to_thread(warn_if_calibrated, self.storage, self.collection_name)
        self._verified = True

    def _indexer(self) -> Indexer:
        """The writer of this collection; a new one gets BM25 unless ``bm25_encoder=False``."""
        self._resolve_bm25(creating=True)
        return Indexer(
            storage=self.storage,
            spec=self.collection_spec(),
            dense_encoder=self.dense_encoder,
            sparse_encoder=self.sparse_encoder,
            bm25_encoder=self._bm25(),
            allow_model_mismatch=self.allow_model_mismatch,
            model_state=self._model_state,
            tenancy=self.tenancy,
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
        await self._aresolve_bm25(creating=True)
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

    def add_embedded_documents(
        self,
        documents: Iterable[EmbeddedDocument],
        *,
        dense_model: str,
        sparse_model: str,
        batch_size: int = DEFAULT_EMBEDDED_BATCH_SIZE,
        show_progress: bool = True,
    ) -> list[str]:
        """Write documents whose vectors were computed elsewhere, without encoding them;
        return their ids as :meth:`add_documents` does (same ids, payload, idempotence).

        ``dense_model`` / ``sparse_model`` name the models that computed the vectors:
        they must be this retriever's encoders and the collection's recorded models
        (else ``CollectionMismatchError``). Each batch is checked whole before any of it
        is written (dimension, sparse indices within the vocabulary, no NaN/inf/zero
        vectors); see :mod:`hybrid_retriever.precomputed`.
        """
        writer = self.embedded_writer(dense_model=dense_model, sparse_model=sparse_model)
        written = writer.write(documents, batch_size=batch_size, show_progress=show_progress)
        self._verified = self._verified or bool(written)
        return written

    def embedded_writer(self, *, dense_model: str, sparse_model: str) -> EmbeddedWriter:
        """The writer behind :meth:`add_embedded_documents` (the CLI's ``index-vectors``
        drives it line by line), with BM25 settled as a write settles it."""
        if self.tenancy is not None:
            raise InvalidParameterError(
                "Precomputed vectors cannot be written through a tenant-bound retriever yet; "
                "write them with a retriever opened without tenant=, with the tenant in each "
                "document's metadata, or use add_documents."
            )
        self._resolve_bm25(creating=True)  # a new collection gets BM25, as add_documents'
        return EmbeddedWriter(
            self,
            dense_model=dense_model,
            sparse_model=sparse_model,
            bm25_encoder=self._bm25(),
            model_state=self._model_state,
        )

    def delete(self, ids: Iterable[str | int]) -> bool:
        """Delete documents by their ids (the caller's, as added, or those results carry).

        True once the deletion is done, as LangChain's ``VectorStore.delete``; unknown ids
        are ignored (still True: none of them is stored afterwards). Errors raise.
        Tenant-bound: only this tenant's documents; ids of another tenant are unknown."""
        tenancy = self.tenancy
        if tenancy is None:
            self.storage.delete(self.collection_name, _point_ids(ids))
        else:
            found = _unique(tenancy.lookup_point_ids(ids))
            self.storage.delete_matching(self.collection_name, found, tenancy.confine(None))
        return True

    async def adelete(self, ids: Iterable[str | int]) -> bool:
        """Async :meth:`delete`."""
        tenancy = self.tenancy
        if tenancy is None:
            await self.storage.adelete(self.collection_name, _point_ids(ids))
        else:
            found = _unique(tenancy.lookup_point_ids(ids))
            await self.storage.adelete_matching(self.collection_name, found, tenancy.confine(None))
        return True

    # -- reading by id -----------------------------------------------------------------------

    def get_by_ids(self, ids: Iterable[str | int]) -> list[Document]:
        """The stored documents among ``ids`` (as for :meth:`delete`), in the order of
        ``ids``; unknown ids (tenant-bound: another tenant's too) are left out."""
        tenancy = self.tenancy
        candidates = lookup_point_ids(ids) if tenancy is None else tenancy.lookup_point_ids(ids)
        points = self.storage.retrieve(self.collection_name, _unique(candidates))
        if tenancy is not None:
            points = tenancy.owned(points)
        return _in_order(candidates, {p.id: p.payload for p in points})

    async def aget_by_ids(self, ids: Iterable[str | int]) -> list[Document]:
        """Async :meth:`get_by_ids`."""
        tenancy = self.tenancy
        candidates = lookup_point_ids(ids) if tenancy is None else tenancy.lookup_point_ids(ids)
        points = await self.storage.aretrieve(self.collection_name, _unique(candidates))
        if tenancy is not None:
            points = tenancy.owned(points)
        return _in_order(candidates, {p.id: p.payload for p in points})

    def count(self) -> int:
        """Number of points in the collection (tenant-bound: this tenant's)."""
        tenancy = self.tenancy
        if tenancy is not None:
            return self.storage.count_matching(self.collection_name, tenancy.confine(None))
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
        cls,
        options_of: Callable[[dict[str, Any]], SearchOptions],
        inputs: Sequence[Any],
        kwargs: dict[str, Any],
    ) -> _BatchPlan:
        try:
            options = options_of({k: v for k, v in kwargs.items() if k != "verbose"})
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

    @classmethod
    async def aof(
        cls, retriever: HybridRetriever, inputs: Sequence[Any], kwargs: dict[str, Any]
    ) -> _BatchPlan:
        """:meth:`of` for ``abatch``: the collection's branches looked at asynchronously."""
        try:
            await retriever._aresolve_bm25()
        except HybridRetrieverError as exc:
            return cls(outcomes=[exc] * len(inputs))
        return cls.of(retriever._options_for, inputs, kwargs)

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
        weights_given = data.get("weights") is not None
        for key, value in config.retriever_kwargs().items():
            data.setdefault(key, value)
        if config.weights is not None and not weights_given:
            # Tuned weights name the branches they were tuned on: a two-branch config
            # stays two-branch on a collection with BM25 (FusionConfig's promise).
            data.setdefault("branches", tuple(config.weights))
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
    data["bm25_encoder"] = as_bm25_setting(data.get("bm25_encoder", AUTO))
    return data


def _available_branches(bm25_encoder: Bm25Setting) -> tuple[str, ...]:
    """The branches a retriever can search: the two it always has, and BM25 unless it
    has none (pending counts as BM25: a collection not created yet will get it)."""
    return (*BRANCHES, BM25) if bm25_encoder is not None else BRANCHES


def _flatten(requests: Sequence[Mapping[str, BranchQuery]]) -> list[BranchQuery]:
    return [query for per_text in requests for query in per_text.values()]


def _regroup(
    requests: Sequence[Mapping[str, BranchQuery]], results: Sequence[list[ScoredPoint]]
) -> list[dict[str, list[ScoredPoint]]]:
    """The flat list of results back into one {branch: hits} per text, in request order."""
    flat = iter(results)
    return [{branch: next(flat) for branch in per_text} for per_text in requests]


@dataclass
class _Ranking:
    """One query's fused ranking, every candidate, as one search round found it."""

    hits: list[FusedHit]
    payloads: dict[str, dict[str, Any]]
    """From the search results: whole payloads, or (on engines that fetch them after
    fusion) only the ``group_by`` key's value."""
    exhausted: bool
    """Every branch returned fewer hits than asked: a deeper search finds nothing more."""
    floors: dict[str, float]
    """Each searched branch's lowest returned score, for ``_relevance`` (``relevance``)."""

    def candidates(self, options: SearchOptions) -> list[FusedHit]:
        """The best hits, as many as the page (or MMR) needs: one per source with
        ``group_by``, a source ranking where its best hit does."""
        key = options.group_by
        if key is None:
            return self.hits[: _needed(options)]
        payloads = self.payloads
        return first_per_group(
            self.hits,
            lambda hit: group_value(hit.id, payloads.get(hit.id, {}), key),
            _needed(options),
        )

    def short_of_sources(self, options: SearchOptions, *, cut: bool = False) -> bool:
        """Fewer sources than needed, while a deeper search could find more (``cut``:
        while the ranking, cut to the hits needed, leaves more of the same search out)."""
        if options.group_by is None or (self.exhausted and not cut):
            return False
        return len(self.candidates(options)) < _needed(options)


def _repeating_sources(
    picked: Sequence[Sequence[FusedHit]],
    points: Sequence[StoredPoint] | None,
    options: SearchOptions,
) -> list[int]:
    """The texts whose picked hits, by their fetched payloads, hold a ``group_by`` source
    more than once: ranked without group keys, they must be ranked again with them."""
    key = options.group_by
    if key is None or points is None:
        return []
    payloads = {p.id: p.payload for p in points}
    again = []
    for i, hits in enumerate(picked):
        groups = [group_value(h.id, payloads.get(h.id, {}), key) for h in hits]
        if len(set(groups)) < len(groups):
            again.append(i)
    return again


def _needed(options: SearchOptions) -> int:
    """Hits a search picks from: the page's (offset + k), or MMR's candidates."""
    if options.search_type is SearchType.MMR:
        return options.fetch_k
    return options.offset + options.k


def _fused_ids(fused: Sequence[Sequence[FusedHit]]) -> list[str]:
    return list(dict.fromkeys(hit.id for hits in fused for hit in hits))


def _payloads_of(
    results: Sequence[Mapping[str, Sequence[ScoredPoint]]],
) -> dict[str, dict[str, Any]]:
    return {p.id: p.payload for per_text in results for points in per_text.values() for p in points}


def _documents(
    hits: Sequence[FusedHit], payloads: dict[str, dict[str, Any]], relevances: Sequence[float]
) -> list[Document]:
    """LangChain Documents that explain their rank. A hit whose point was deleted between
    the search and the payload lookup is dropped rather than returned empty."""
    documents = []
    for hit, hit_relevance in zip(hits, relevances, strict=True):
        payload = payloads.get(hit.id)
        if payload is None:
            continue
        metadata = dict(payload.get(METADATA_KEY) or {})
        metadata.update(_id=hit.id, _score=hit.score, _ranks=hit.ranks, _scores=hit.scores)
        metadata[RELEVANCE_KEY] = hit_relevance
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
