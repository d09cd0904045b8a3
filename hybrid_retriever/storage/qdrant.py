"""Storage backend on qdrant-client: embedded (in memory or on disk), server or cluster.

Server and cluster access uses the native ``AsyncQdrantClient`` for async calls.
qdrant-client's embedded mode has no real async (its async client would also be
a separate database), so with an embedded client the async calls run the sync
client in a worker thread, serialised by a lock because embedded mode is not
thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hybrid_retriever.collection import (
    CollectionLayout,
    CollectionSpec,
    DenseVectorInfo,
    Distance,
    SparseVectorInfo,
)
from hybrid_retriever.errors import (
    CollectionNotFoundError,
    InvalidParameterError,
    StorageError,
)
from hybrid_retriever.storage.base import (
    RECORD_KEY,
    BranchQuery,
    CollectionExistsError,
    RecordNotWrittenError,
    Routing,
    ScoredPoint,
    StorageBackend,
    StoredPoint,
    Vector,
    WithVectors,
    payload_points,
    refuse_unfinished_copy,
)
from hybrid_retriever.storage.disk_space import disk_full_error, is_disk_full
from hybrid_retriever.vector_storage import STORAGE_KEY, Quantization, VectorStorage
from hybrid_retriever.vectors import SparseVector

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient, QdrantClient
    from qdrant_client.http import models


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    """How a Qdrant server or cluster lays out a collection this package creates.

    Existing collections are never changed. See Qdrant's distributed deployment guide
    for what each option does.
    """

    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None
    on_disk_vectors: bool | None = None
    """Keep dense vectors and the sparse index on disk (memmapped) instead of in RAM."""
    on_disk_payload: bool | None = None
    shard_keys: tuple[str | int, ...] = ()
    """Non-empty: custom sharding, e.g. one shard key per tenant; created with the collection."""


class QdrantClientStorage(StorageBackend):
    """Qdrant through ``qdrant-client``; pass a sync client, an async client, or both.

    Build one from connection arguments with :meth:`connect`. ``shard_key`` binds
    all reads and writes to one shard key of a custom-sharded collection (one
    tenant); :meth:`for_shard_key` makes such a view sharing the same clients.
    ``read_consistency`` is the default for queries; both can be overridden per query.
    """

    def __init__(
        self,
        client: QdrantClient | None = None,
        async_client: AsyncQdrantClient | None = None,
        *,
        cluster: ClusterOptions | None = None,
        shard_key: str | int | None = None,
        read_consistency: int | str | None = None,
        description: str | None = None,
    ) -> None:
        if client is None and async_client is None:
            raise InvalidParameterError(
                "QdrantClientStorage needs a QdrantClient, an AsyncQdrantClient, or both."
            )
        self._client = client
        self._async_client = async_client
        self._cluster = cluster or ClusterOptions()
        self._shard_key = shard_key
        self._read_consistency = read_consistency
        self._description = description or "user-supplied client"
        embedded = client is not None and _is_embedded(client)
        self._embedded_lock = threading.Lock() if embedded else None
        self._search_params: dict[str, dict[str, models.SearchParams]] = {}
        """Per collection, the search params of each dense vector that has some (read
        once); none in embedded mode, which searches exactly and warns about them."""

    def for_shard_key(self, shard_key: str | int) -> QdrantClientStorage:
        """A view of the same clients that reads and writes only ``shard_key`` (one tenant)."""
        view = QdrantClientStorage(
            self._client,
            self._async_client,
            cluster=self._cluster,
            shard_key=shard_key,
            read_consistency=self._read_consistency,
            description=self._description,
        )
        view._embedded_lock = self._embedded_lock
        return view

    @classmethod
    def connect(
        cls,
        *,
        location: str | None = None,
        path: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        prefer_grpc: bool = False,
        timeout: int | None = None,
        cluster: ClusterOptions | None = None,
        shard_key: str | int | None = None,
        read_consistency: int | str | None = None,
    ) -> QdrantClientStorage:
        """Open Qdrant the way ``qdrant_client.QdrantClient`` would.

        ``location=":memory:"`` is a throw-away in-process database, ``path=`` an
        on-disk one, ``url=`` (or an http(s) ``location``) a server or cluster.
        With none given, an in-memory database is used.
        """
        from qdrant_client import AsyncQdrantClient, QdrantClient

        given = {
            name: value
            for name, value in (("location", location), ("path", path), ("url", url))
            if value is not None
        }
        if len(given) > 1:
            raise InvalidParameterError(
                f"Pass only one of location=, path= or url= (got {', '.join(given)})."
            )
        if not given:
            location = ":memory:"
        remote = url is not None or (location is not None and location != ":memory:")
        kwargs: dict[str, Any] = {
            "location": location,
            "path": path,
            "url": url,
            "api_key": api_key,
            "prefer_grpc": prefer_grpc,
            "timeout": timeout,
        }
        description = _describe(location=location, path=path, url=url)
        with _engine_errors(description):
            client = QdrantClient(**kwargs)
            async_client = AsyncQdrantClient(**kwargs) if remote else None
        return cls(
            client,
            async_client,
            cluster=cluster,
            shard_key=shard_key,
            read_consistency=read_consistency,
            description=description,
        )

    def __repr__(self) -> str:
        # Never include the api key.
        tenant = "" if self._shard_key is None else f", shard_key={self._shard_key!r}"
        return f"QdrantClientStorage({self._description}{tenant})"

    @property
    def client(self) -> QdrantClient:
        """The sync client; an error if only an async one was given."""
        if self._client is None:
            raise StorageError(
                "This storage was given only an AsyncQdrantClient, so it supports only the "
                "async methods (ainvoke, aadd_documents, ...). Also pass client=QdrantClient(...) "
                "to use the sync ones."
            )
        return self._client

    @property
    def async_client(self) -> AsyncQdrantClient | None:
        """The native async client, when there is one (server, cluster or user-supplied)."""
        return self._async_client

    def _locked(self) -> threading.Lock | nullcontext[None]:
        return self._embedded_lock if self._embedded_lock is not None else nullcontext()

    # -- sync ---------------------------------------------------------------------------

    def get_layout(self, collection: str) -> CollectionLayout | None:
        with self._locked(), _engine_errors(self._description):
            if not self.client.collection_exists(collection):
                return None
            return _layout(self.client.get_collection(collection))

    def create_collection(self, spec: CollectionSpec) -> None:
        with self._locked():
            self._create(spec)

    def create_recorded_collection(self, spec: CollectionSpec, record: Mapping[str, Any]) -> None:
        """Create and record under the lock every embedded call takes, so that no writer of
        this process sees the collection before its record (a server has no such lock)."""
        with self._locked():
            self._create(spec)
            try:
                self._write_record(spec.name, record)
            except StorageError as exc:
                raise RecordNotWrittenError(str(exc)) from exc

    def _create(self, spec: CollectionSpec) -> None:
        self._search_params.pop(spec.name, None)
        with _engine_errors(self._description, creating=spec.name):
            self.client.create_collection(spec.name, **_collection_config(spec, self._cluster))
            for key in self._cluster.shard_keys:
                self.client.create_shard_key(spec.name, key)

    keeps_collection_record = True

    def read_collection_record(self, collection: str) -> dict[str, Any] | None:
        with self._locked(), _engine_errors(self._description, collection=collection):
            return _record_of(self.client.get_collection(collection), collection)

    def write_collection_record(self, collection: str, record: Mapping[str, Any]) -> None:
        """Into the collection's metadata (Qdrant 1.16+), under :data:`RECORD_KEY`."""
        with self._locked():
            self._write_record(collection, record)

    def _write_record(self, collection: str, record: Mapping[str, Any]) -> None:
        with _engine_errors(self._description, collection=collection), _metadata_supported():
            self.client.update_collection(collection, metadata={RECORD_KEY: dict(record)})

    def read_collection_metadata(self, collection: str) -> dict[str, Any]:
        with self._locked(), _engine_errors(self._description, collection=collection):
            info = self.client.get_collection(collection)
        return dict(getattr(info.config, "metadata", None) or {})

    def write_collection_metadata(self, collection: str, metadata: Mapping[str, Any]) -> None:
        with (
            self._locked(),
            _engine_errors(self._description, collection=collection),
            _metadata_supported(),
        ):
            self.client.update_collection(collection, metadata=dict(metadata))

    def delete_collection(self, collection: str) -> None:
        with self._locked(), _engine_errors(self._description, collection=collection):
            self.client.delete_collection(collection)

    def upsert(self, collection: str, points: Sequence[StoredPoint]) -> None:
        with self._locked(), _engine_errors(self._description, collection=collection):
            self.client.upsert(
                collection,
                points=_point_structs(points),
                wait=True,
                shard_key_selector=self._shard_key,
            )

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        from qdrant_client.http import models

        with self._locked(), _engine_errors(self._description, collection=collection):
            self.client.delete(
                collection,
                points_selector=models.PointIdsList(points=list(ids)),
                wait=True,
                shard_key_selector=self._shard_key,
            )

    def delete_matching(
        self, collection: str, ids: Sequence[str], query_filter: models.Filter
    ) -> None:
        if not ids:
            return
        with self._locked(), _engine_errors(self._description, collection=collection):
            self.client.delete(
                collection,
                points_selector=_matching(ids, query_filter),
                wait=True,
                shard_key_selector=self._shard_key,
            )

    def count_matching(self, collection: str, query_filter: models.Filter) -> int:
        with self._locked(), _engine_errors(self._description, collection=collection):
            counted = self.client.count(
                collection,
                count_filter=query_filter,
                exact=True,
                shard_key_selector=self._shard_key,
            )
            return int(counted.count)

    def ensure_tenant_index(self, collection: str, key: str, *, integer: bool) -> bool:
        """A server gets a keyword index with ``is_tenant`` (an integer index for integer
        tenants); embedded mode ignores payload indexes (and warns), so it gets none."""
        if self._embedded_lock is not None:
            return False
        with _engine_errors(self._description, collection=collection):
            if key in (self.client.get_collection(collection).payload_schema or {}):
                return True
            self.client.create_payload_index(
                collection, key, field_schema=_tenant_index(integer=integer), wait=True
            )
        return True

    async def aensure_tenant_index(self, collection: str, key: str, *, integer: bool) -> bool:
        if self._async_client is None:
            return await super().aensure_tenant_index(collection, key, integer=integer)
        with _engine_errors(self._description, collection=collection):
            info = await self._async_client.get_collection(collection)
            if key in (info.payload_schema or {}):
                return True
            await self._async_client.create_payload_index(
                collection, key, field_schema=_tenant_index(integer=integer), wait=True
            )
        return True

    def retrieve(
        self, collection: str, ids: Sequence[str], *, with_vectors: WithVectors = False
    ) -> list[StoredPoint]:
        wanted = with_vectors if isinstance(with_vectors, bool) else list(with_vectors)
        with self._locked(), _engine_errors(self._description, collection=collection):
            records = self.client.retrieve(
                collection,
                ids=list(ids),
                with_payload=True,
                with_vectors=wanted,
                shard_key_selector=self._shard_key,
            )
        if not with_vectors:
            return payload_points(records)
        return [
            StoredPoint(
                id=str(r.id),
                vectors={
                    n: _our_vector(v)
                    for n, v in (r.vector if isinstance(r.vector, dict) else {}).items()
                },
                payload=r.payload or {},
            )
            for r in records
        ]

    def scroll_points(
        self, collection: str, *, batch_size: int, start: str | None = None
    ) -> Iterator[list[StoredPoint]]:
        offset: Any = start
        while True:
            with self._locked(), _engine_errors(self._description, collection=collection):
                records, offset = self.client.scroll(
                    collection,
                    limit=batch_size,
                    offset=offset,
                    with_payload=True,
                    with_vectors=True,
                    shard_key_selector=self._shard_key,
                )
            yield [
                StoredPoint(
                    id=str(r.id),
                    vectors={
                        n: _our_vector(v)
                        for n, v in (r.vector if isinstance(r.vector, dict) else {}).items()
                    },
                    payload=r.payload or {},
                )
                for r in records
            ]
            if offset is None:
                return

    def count(self, collection: str) -> int:
        with self._locked(), _engine_errors(self._description, collection=collection):
            counted = self.client.count(collection, exact=True, shard_key_selector=self._shard_key)
            return int(counted.count)

    def search(
        self,
        collection: str,
        queries: Sequence[BranchQuery],
        query_filter: models.Filter | None,
        *,
        routing: Routing | None = None,
    ) -> list[list[ScoredPoint]]:
        shard_key, consistency = self._routing(routing)
        with self._locked(), _engine_errors(self._description, collection=collection):
            params = self._params_of(collection)
            responses = self.client.query_batch_points(
                collection,
                requests=_query_requests(queries, query_filter, shard_key, params),
                consistency=consistency,
            )
        return _branch_results(responses)

    def _params_of(self, collection: str) -> dict[str, models.SearchParams]:
        params = self._search_params.get(collection)
        if params is None:
            embedded = self._embedded_lock is not None
            params = {} if embedded else _search_params(self.client.get_collection(collection))
            self._search_params[collection] = params
        return params

    def _routing(self, routing: Routing | None) -> tuple[Any, Any]:
        """This query's shard key selector and read consistency (the call's, else ours)."""
        routing = routing or Routing()
        shard_key = routing.shard_key if routing.shard_key is not None else self._shard_key
        consistency = (
            routing.read_consistency
            if routing.read_consistency is not None
            else self._read_consistency
        )
        return shard_key, consistency

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # -- async (native when an AsyncQdrantClient is present) ---------------------------

    async def aget_layout(self, collection: str) -> CollectionLayout | None:
        if self._async_client is None:
            return await super().aget_layout(collection)
        with _engine_errors(self._description):
            if not await self._async_client.collection_exists(collection):
                return None
            return _layout(await self._async_client.get_collection(collection))

    async def acreate_recorded_collection(
        self, spec: CollectionSpec, record: Mapping[str, Any]
    ) -> None:
        if self._async_client is None:
            return await super().acreate_recorded_collection(spec, record)
        await self.acreate_collection(spec)
        try:
            await self.awrite_collection_record(spec.name, record)
        except StorageError as exc:
            raise RecordNotWrittenError(str(exc)) from exc

    async def acreate_collection(self, spec: CollectionSpec) -> None:
        if self._async_client is None:
            return await super().acreate_collection(spec)
        self._search_params.pop(spec.name, None)
        with _engine_errors(self._description, creating=spec.name):
            await self._async_client.create_collection(
                spec.name, **_collection_config(spec, self._cluster)
            )
            for key in self._cluster.shard_keys:
                await self._async_client.create_shard_key(spec.name, key)

    async def aread_collection_record(self, collection: str) -> dict[str, Any] | None:
        if self._async_client is None:
            return await super().aread_collection_record(collection)
        with _engine_errors(self._description, collection=collection):
            info = await self._async_client.get_collection(collection)
        return _record_of(info, collection)

    async def awrite_collection_record(self, collection: str, record: Mapping[str, Any]) -> None:
        if self._async_client is None:
            return await super().awrite_collection_record(collection, record)
        with _engine_errors(self._description, collection=collection), _metadata_supported():
            await self._async_client.update_collection(
                collection, metadata={RECORD_KEY: dict(record)}
            )

    async def aupsert(self, collection: str, points: Sequence[StoredPoint]) -> None:
        if self._async_client is None:
            return await super().aupsert(collection, points)
        with _engine_errors(self._description, collection=collection):
            await self._async_client.upsert(
                collection,
                points=_point_structs(points),
                wait=True,
                shard_key_selector=self._shard_key,
            )

    async def adelete(self, collection: str, ids: Sequence[str]) -> None:
        if self._async_client is None:
            return await super().adelete(collection, ids)
        from qdrant_client.http import models

        with _engine_errors(self._description, collection=collection):
            await self._async_client.delete(
                collection,
                points_selector=models.PointIdsList(points=list(ids)),
                wait=True,
                shard_key_selector=self._shard_key,
            )

    async def adelete_matching(
        self, collection: str, ids: Sequence[str], query_filter: models.Filter
    ) -> None:
        if self._async_client is None:
            return await super().adelete_matching(collection, ids, query_filter)
        if not ids:
            return
        with _engine_errors(self._description, collection=collection):
            await self._async_client.delete(
                collection,
                points_selector=_matching(ids, query_filter),
                wait=True,
                shard_key_selector=self._shard_key,
            )

    async def asearch(
        self,
        collection: str,
        queries: Sequence[BranchQuery],
        query_filter: models.Filter | None,
        *,
        routing: Routing | None = None,
    ) -> list[list[ScoredPoint]]:
        if self._async_client is None:
            return await super().asearch(collection, queries, query_filter, routing=routing)
        shard_key, consistency = self._routing(routing)
        with _engine_errors(self._description, collection=collection):
            params = self._search_params.get(collection)
            if params is None:
                if _is_embedded_async(self._async_client):
                    params = {}
                else:
                    params = _search_params(await self._async_client.get_collection(collection))
                self._search_params[collection] = params
            responses = await self._async_client.query_batch_points(
                collection,
                requests=_query_requests(queries, query_filter, shard_key, params),
                consistency=consistency,
            )
        return _branch_results(responses)


# -- translation between our value types and qdrant-client's ------------------------------


def _collection_config(spec: CollectionSpec, cluster: ClusterOptions) -> dict[str, Any]:
    from qdrant_client.http import models

    sparse_index = (
        models.SparseIndexParams(on_disk=cluster.on_disk_vectors)
        if cluster.on_disk_vectors is not None
        else None
    )
    storage = spec.storage_to_create
    sparse_vectors = {spec.sparse_vector_name: models.SparseVectorParams(index=sparse_index)}
    if spec.bm25_vector_name is not None:  # BM25: the engine supplies the IDF
        sparse_vectors[spec.bm25_vector_name] = models.SparseVectorParams(
            index=sparse_index, modifier=models.Modifier.IDF
        )
    return {
        "vectors_config": {
            spec.dense_vector_name: models.VectorParams(
                size=spec.dense_size,
                distance=models.Distance(spec.distance.value),
                on_disk=True if storage.dense_on_disk else cluster.on_disk_vectors,
                hnsw_config=models.HnswConfigDiff(on_disk=True) if storage.hnsw_on_disk else None,
                quantization_config=_quantization_config(storage),
            )
        },
        "sparse_vectors_config": sparse_vectors,
        "shard_number": cluster.shard_number,
        "replication_factor": cluster.replication_factor,
        "write_consistency_factor": cluster.write_consistency_factor,
        "on_disk_payload": cluster.on_disk_payload,
        "sharding_method": models.ShardingMethod.CUSTOM if cluster.shard_keys else None,
        # The search-time settings, kept where the model record is (Qdrant 1.16+).
        "metadata": {STORAGE_KEY: storage.search_settings()}
        if storage.search_settings() != VectorStorage().search_settings()
        else None,
    }


def _quantization_config(storage: VectorStorage) -> models.QuantizationConfig | None:
    """The compressed copy of the dense vectors, kept in RAM (that is its point)."""
    from qdrant_client.http import models

    if storage.quantization is Quantization.INT8:
        return models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
        )
    if storage.quantization is Quantization.BINARY:
        return models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))
    return None


def _storage_of(params: models.VectorParams, info: models.CollectionInfo) -> VectorStorage | None:
    """A dense vector's storage as the engine reports it (None: not one this package
    describes), with the search-time settings from the collection's metadata."""
    from qdrant_client.http import models

    quantization_config = params.quantization_config or info.config.quantization_config
    if quantization_config is None:
        quantization = Quantization.NONE
    elif isinstance(quantization_config, models.ScalarQuantization):
        quantization = Quantization.INT8
    elif isinstance(quantization_config, models.BinaryQuantization):
        quantization = Quantization.BINARY
    else:
        return None
    hnsw_on_disk = (params.hnsw_config and params.hnsw_config.on_disk) or (
        info.config.hnsw_config.on_disk if info.config.hnsw_config else None
    )
    settings = (getattr(info.config, "metadata", None) or {}).get(STORAGE_KEY)
    return VectorStorage(
        quantization=quantization,
        dense_on_disk=bool(params.on_disk),
        hnsw_on_disk=bool(hnsw_on_disk),
    ).with_search_settings(settings if isinstance(settings, dict) else None)


def _search_params(info: models.CollectionInfo) -> dict[str, models.SearchParams]:
    """Search params per dense vector, from its storage (only those that need some)."""
    from qdrant_client.http import models

    params: dict[str, models.SearchParams] = {}
    for name, info_ in _layout(info).dense.items():
        storage = info_.storage
        if storage is None:
            continue
        quantization = (
            models.QuantizationSearchParams(
                rescore=storage.rescore, oversampling=storage.oversampling
            )
            if storage.quantization is not Quantization.NONE
            else None
        )
        if quantization is not None or storage.hnsw_ef is not None:
            params[name] = models.SearchParams(hnsw_ef=storage.hnsw_ef, quantization=quantization)
    return params


def _layout(info: models.CollectionInfo) -> CollectionLayout:
    from qdrant_client.http import models

    params = info.config.params
    vectors = params.vectors
    if isinstance(vectors, models.VectorParams):
        dense_params = {"": vectors}
    else:
        dense_params = dict(vectors or {})
    dense = {
        name: DenseVectorInfo(
            size=v.size, distance=Distance(v.distance.value), storage=_storage_of(v, info)
        )
        for name, v in dense_params.items()
    }
    sparse = {
        name: SparseVectorInfo(idf_modifier=p.modifier == models.Modifier.IDF)
        for name, p in (params.sparse_vectors or {}).items()
    }
    return CollectionLayout(dense=dense, sparse=sparse)


def _record_of(info: models.CollectionInfo, collection: str) -> dict[str, Any] | None:
    metadata = getattr(info.config, "metadata", None) or {}
    refuse_unfinished_copy(metadata, f"collection {collection!r}")
    record = metadata.get(RECORD_KEY)
    if record is None or isinstance(record, dict):
        return record
    raise StorageError(
        f"Collection {collection!r}'s metadata key {RECORD_KEY!r} does not hold this package's "
        "record. Remove that key (update_collection(metadata={...: None})): the next write "
        "records the models that write (make sure they are the ones it was built with)."
    )


@contextmanager
def _metadata_supported() -> Iterator[None]:
    """qdrant-client before 1.16 has no collection metadata: say what to upgrade."""
    try:
        yield
    except TypeError as exc:
        if "metadata" not in str(exc):
            raise
        raise StorageError(
            "This qdrant-client cannot store collection metadata, where the models that wrote "
            "a collection are recorded. Upgrade it: pip install 'qdrant-client>=1.16'."
        ) from exc


def _our_vector(vector: Any) -> Vector:
    if isinstance(vector, list):
        return [float(v) for v in vector]
    return SparseVector(indices=list(vector.indices), values=[float(v) for v in vector.values])


def _engine_vector(vector: Vector) -> Any:
    from qdrant_client.http import models

    if isinstance(vector, SparseVector):
        return models.SparseVector(indices=vector.indices, values=vector.values)
    return vector


def _point_structs(points: Sequence[StoredPoint]) -> list[models.PointStruct]:
    from qdrant_client.http import models

    return [
        models.PointStruct(
            id=p.id,
            vector={name: _engine_vector(v) for name, v in p.vectors.items()},
            payload=p.payload,
        )
        for p in points
    ]


def _tenant_index(*, integer: bool) -> Any:
    """Qdrant's ``is_tenant`` exists for keyword (and UUID) indexes; integer tenants get a
    lookup-only integer index."""
    from qdrant_client.http import models

    if integer:
        return models.IntegerIndexParams(
            type=models.IntegerIndexType.INTEGER, lookup=True, range=False
        )
    return models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)


def _matching(ids: Sequence[str], query_filter: models.Filter) -> models.FilterSelector:
    """The points among ``ids`` that match ``query_filter``, as one delete selector."""
    from qdrant_client.http import models

    return models.FilterSelector(
        filter=models.Filter(must=[models.HasIdCondition(has_id=list(ids)), query_filter])
    )


def _query_requests(
    queries: Sequence[BranchQuery],
    query_filter: models.Filter | None,
    shard_key: Any,
    params: Mapping[str, models.SearchParams],
) -> list[models.QueryRequest]:
    from qdrant_client.http import models

    return [
        models.QueryRequest(
            query=_engine_vector(query.vector),
            using=query.vector_name or None,
            limit=query.limit,
            filter=query_filter,
            with_payload=(
                query.with_payload
                if isinstance(query.with_payload, bool)
                else list(query.with_payload)
            ),
            shard_key=shard_key,
            params=models.SearchParams(exact=True)
            if query.exact
            else params.get(query.vector_name),
        )
        for query in queries
    ]


def _branch_results(responses: Sequence[models.QueryResponse]) -> list[list[ScoredPoint]]:
    return [
        [ScoredPoint(id=str(p.id), score=float(p.score), payload=p.payload or {}) for p in r.points]
        for r in responses
    ]


# -- errors and descriptions -----------------------------------------------------------------


def _is_embedded(client: QdrantClient) -> bool:
    from qdrant_client.local.qdrant_local import QdrantLocal

    return isinstance(getattr(client, "_client", None), QdrantLocal)


def _is_embedded_async(client: AsyncQdrantClient) -> bool:
    from qdrant_client.local.async_qdrant_local import AsyncQdrantLocal

    return isinstance(getattr(client, "_client", None), AsyncQdrantLocal)


def _describe(*, location: str | None, path: str | None, url: str | None) -> str:
    """Where the data lives, for reprs and errors, with any credentials in a URL removed."""
    if path is not None:
        return f"path={path!r}"
    if url is not None:
        return f"url={redact_url(url)!r}"
    if location is not None and location != ":memory:":
        return f"location={redact_url(location)!r}"
    return f"location={location!r}"


def redact_url(url: str) -> str:
    """``url`` without user:password and without query parameters (which may hold keys)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    if parts.username or parts.password:
        host = f"***@{host}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@contextmanager
def _engine_errors(
    description: str, *, collection: str | None = None, creating: str | None = None
) -> Iterator[None]:
    """Turn qdrant-client's exceptions into the package's, with a hint how to fix them.

    The engine's own message is passed through :func:`_scrub`, since a transport error
    can quote the URL it failed on, credentials included. Embedded mode on disk stores
    points in SQLite, so a full disk arrives as ``sqlite3.OperationalError`` or ``OSError``.
    """
    import sqlite3

    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    try:
        yield
    except UnexpectedResponse as exc:
        if creating is not None and exc.status_code == 409:
            raise CollectionExistsError(creating) from exc
        if collection is not None and exc.status_code == 404:
            raise _not_found(collection, description) from exc
        raise StorageError(
            f"Qdrant at {description} refused the request: HTTP {exc.status_code} "
            f"{exc.reason_phrase}: {_scrub(exc.content.decode(errors='replace')[:300])}"
        ) from None
    except ResponseHandlingException as exc:
        raise StorageError(
            f"Could not reach Qdrant at {description}: {_scrub(str(exc))}. Check that the "
            "server is running and that url= and the api key are right."
        ) from None
    except ValueError as exc:  # embedded mode reports problems as ValueError
        message = str(exc)
        if creating is not None and "already exists" in message:
            raise CollectionExistsError(creating) from exc
        if collection is not None and "not found" in message:
            raise _not_found(collection, description) from exc
        raise StorageError(
            f"Qdrant at {description} refused the request: {_scrub(message)}"
        ) from exc
    except RuntimeError as exc:  # e.g. an on-disk folder already opened by another client
        raise StorageError(f"Could not open Qdrant at {description}: {_scrub(str(exc))}") from exc
    except (sqlite3.Error, OSError) as exc:
        if is_disk_full(exc):
            raise disk_full_error(f"Qdrant at {description}", exc) from exc
        raise StorageError(
            f"Qdrant at {description} could not read or write its files: {_scrub(str(exc))}. "
            "Check that the folder exists, is writable and is not used by another program."
        ) from exc


def _scrub(message: str) -> str:
    """Remove URL credentials and api-key looking values from an engine's message."""
    import re

    message = re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", message)
    return re.sub(r"(?i)(api[-_]?key[\"'=:\s]+)[^\s\"',&]+", r"\1***", message)


def _not_found(collection: str, description: str) -> CollectionNotFoundError:
    return CollectionNotFoundError(
        f"Collection {collection!r} does not exist in Qdrant at {description}. Index documents "
        "first (HybridRetriever.from_documents or add_documents), or check collection_name "
        "and the location."
    )
