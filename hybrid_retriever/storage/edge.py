"""Storage backend on Qdrant Edge (``qdrant-edge-py``), Qdrant's in-process engine.

Edge runs Qdrant's own Rust segment code inside the Python process: the same
named dense and sparse vectors, payload filters and write-ahead log as a server,
without a server. It is the embedded default because qdrant-client's embedded
mode scores in Python and slows down linearly with the corpus.

On-disk layout: ``path/<collection>/`` is one Edge shard (its ``edge_config.json``
holds the vector configuration, ``wal/`` the write-ahead log, ``segments/`` the
data). With no path, shards live in a temporary folder deleted on ``close()``.

Things Edge does differently from a server, and how this backend handles them:

* there are no background optimizers: new points sit in a plain segment that is
  searched by brute force until ``optimize()`` builds the indexes, so ingestion
  calls :meth:`EdgeStorage.optimize` when it finishes;
* a folder can be opened by one shard at a time (a second open fails), so shards
  are opened once and shared by everything that uses this storage object;
* Edge maps sparse files and fills their pages as it writes; on a full disk the
  kernel answers with SIGBUS, which kills the process. So every call that may grow
  the files (open, which replays the log, create, upsert, delete, optimize) first
  checks the free space it needs (``disk_space``) and raises ``StorageError`` instead;
* the bindings hold the GIL during native calls and have no async API, so async
  methods run in a worker thread; a call blocks the event loop only for the
  native search itself (about a millisecond), never for encoding.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybrid_retriever.collection import (
    CollectionLayout,
    CollectionSpec,
    DenseVectorInfo,
    Distance,
    SparseVectorInfo,
)
from hybrid_retriever.errors import CollectionNotFoundError, InvalidParameterError, StorageError
from hybrid_retriever.storage.base import (
    RECORD_KEY,
    BranchQuery,
    CollectionExistsError,
    Routing,
    ScoredPoint,
    StorageBackend,
    StoredPoint,
    Vector,
    WithVectors,
    payload_points,
    refuse_unfinished_copy,
    write_record_after_create,
)
from hybrid_retriever.storage.disk_space import (
    OPTIMIZE_GROWTH,
    SAFETY_MARGIN_BYTES,
    UPSERT_GROWTH,
    allocated_bytes,
    disk_full_error,
    is_disk_full,
    raw_point_bytes,
    require_free_space,
)
from hybrid_retriever.storage.edge_filters import to_edge_filter
from hybrid_retriever.vector_storage import STORAGE_KEY, Quantization, VectorStorage
from hybrid_retriever.vectors import SparseVector

if TYPE_CHECKING:
    from qdrant_client.http.models import Filter

CONFIG_FILE = "edge_config.json"
RECORD_FILE = "hybrid_retriever.json"
"""The collection's metadata, in the shard's folder (Edge keeps none of its own): this
package's record under ``RECORD_KEY`` (which models wrote the vectors), and what older
versions stored there. Edge ignores the file, and it goes wherever the shard goes."""
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class EdgeStorage(StorageBackend):
    """Qdrant Edge shards in a folder, one per collection."""

    # Decoding 200 candidates' payloads costs more than a 10-point lookup in process.
    fetch_payloads_after_fusion = True

    def __init__(self, path: str | Path | None = None) -> None:
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        if path is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="hybrid-retriever-edge-")
            path = self._temporary.name
        self._root = Path(path)
        if self._root.exists() and not self._root.is_dir():
            raise StorageError(f"Edge path {str(self._root)!r} exists and is not a folder.")
        # The folder is made by the first create_collection: reading from a path that
        # does not exist must leave nothing behind.
        self._shards: dict[str, Any] = {}
        self._search_params: dict[str, dict[str, Any]] = {}
        """Per collection, the Edge ``SearchParams`` of each dense vector that has some."""
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        where = "temporary" if self._temporary is not None else f"path={str(self._root)!r}"
        return f"EdgeStorage({where})"

    @property
    def root(self) -> Path:
        return self._root

    # -- shards ------------------------------------------------------------------------------

    def _folder(self, collection: str) -> Path:
        if not _SAFE_NAME.match(collection) or ".." in collection:
            raise InvalidParameterError(
                f"Collection name {collection!r} cannot be used as an Edge folder name; use "
                "letters, digits, '.', '_' and '-' (not starting with '.' or '-')."
            )
        return self._root / collection

    def _shard(self, collection: str) -> Any:
        with self._lock:
            shard = self._shards.get(collection)
            if shard is not None:
                return shard
            folder = self._folder(collection)
            if not (folder / CONFIG_FILE).is_file():
                from hybrid_retriever.storage.connect import missing_collection_message

                raise CollectionNotFoundError(missing_collection_message(self, collection))
            from qdrant_edge import EdgeShard

            # Loading replays the WAL into the mapped segments: at most the WAL's size.
            require_free_space(
                folder,
                SAFETY_MARGIN_BYTES + allocated_bytes(folder / "wal"),
                action=f"open collection {collection!r} (Qdrant Edge replays its log on open)",
            )
            with _edge_errors(self, collection):
                shard = EdgeShard.load(str(folder))
            self._shards[collection] = shard
            return shard

    # -- StorageBackend ----------------------------------------------------------------------

    def get_layout(self, collection: str) -> CollectionLayout | None:
        config_path = self._folder(collection) / CONFIG_FILE
        with self._lock:  # a collection being created is seen with its record, or not at all
            if not config_path.is_file():
                return None
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StorageError(f"Cannot read the Edge configuration {config_path}: {exc}") from exc
        settings = self._collection_metadata(collection).get(STORAGE_KEY)
        dense = {
            name: DenseVectorInfo(
                size=int(params["size"]),
                distance=Distance(params["distance"]),
                storage=_storage_of(params, config, settings),
            )
            for name, params in (config.get("vectors") or {}).items()
        }
        sparse = {
            name: SparseVectorInfo(idf_modifier=str(params.get("modifier") or "").lower() == "idf")
            for name, params in (config.get("sparse_vectors") or {}).items()
        }
        return CollectionLayout(dense=dense, sparse=sparse)

    def create_collection(self, spec: CollectionSpec) -> None:
        from qdrant_edge import (
            Distance as EdgeDistance,
        )
        from qdrant_edge import (
            EdgeConfig,
            EdgeShard,
            EdgeSparseVectorParams,
            EdgeVectorParams,
            Modifier,
        )

        folder = self._folder(spec.name)
        sparse_vectors = {spec.sparse_vector_name: EdgeSparseVectorParams()}
        if spec.bm25_vector_name is not None:  # BM25: the engine supplies the IDF
            sparse_vectors[spec.bm25_vector_name] = EdgeSparseVectorParams(modifier=Modifier.Idf)
        storage = spec.storage_to_create
        config = EdgeConfig(
            vectors={
                spec.dense_vector_name: EdgeVectorParams(
                    size=spec.dense_size,
                    distance=getattr(EdgeDistance, spec.distance.value),
                    **_edge_storage_params(storage),
                )
            },
            sparse_vectors=sparse_vectors,
        )
        with self._lock:
            if (folder / CONFIG_FILE).is_file():
                raise CollectionExistsError(spec.name)
            require_free_space(
                self._root, SAFETY_MARGIN_BYTES, action=f"create collection {spec.name!r}"
            )
            try:
                self._root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                if is_disk_full(exc):
                    raise disk_full_error(repr(str(self._root)), exc) from exc
                raise StorageError(
                    f"Cannot create the Edge folder {str(self._root)!r}: {exc}"
                ) from exc
            with _edge_errors(self, spec.name):
                self._shards[spec.name] = EdgeShard.create(str(folder), config)
            self._search_params.pop(spec.name, None)
            if storage.search_settings() != VectorStorage().search_settings():
                self.write_collection_metadata(spec.name, {STORAGE_KEY: storage.search_settings()})

    def create_recorded_collection(self, spec: CollectionSpec, record: Mapping[str, Any]) -> None:
        """Create and record under the lock that :meth:`get_layout` takes, so that no
        writer of this process sees the collection before its record."""
        with self._lock:
            self.create_collection(spec)
            write_record_after_create(self, spec.name, record)

    keeps_collection_record = True

    def read_collection_record(self, collection: str) -> dict[str, Any] | None:
        metadata = self._collection_metadata(collection)
        refuse_unfinished_copy(metadata, f"collection {collection!r} in {self!r}")
        record = metadata.get(RECORD_KEY)
        if record is None or isinstance(record, dict):
            return record
        raise StorageError(
            f"{self._folder(collection) / RECORD_FILE}: the key {RECORD_KEY!r} does not hold a "
            "JSON object. Delete the key: the next write records the models that write (make "
            "sure they are the ones the collection was built with)."
        )

    def write_collection_record(self, collection: str, record: Mapping[str, Any]) -> None:
        """Write the record under :data:`RECORD_KEY`, keeping the file's other keys."""
        self.write_collection_metadata(collection, {RECORD_KEY: dict(record)})

    def read_collection_metadata(self, collection: str) -> dict[str, Any]:
        return self._collection_metadata(collection)

    def write_collection_metadata(self, collection: str, metadata: Mapping[str, Any]) -> None:
        """Merge into the metadata file (None removes a key), atomically (a whole new file
        renamed over the old one): a crash leaves the old file or the new one, never half
        of one."""
        path = self._folder(collection) / RECORD_FILE
        merged = self._collection_metadata(collection)
        for key, value in metadata.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        metadata = merged
        scratch = path.with_name(f".{RECORD_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(scratch, "w", encoding="utf-8") as handle:
                json.dump(metadata, handle, ensure_ascii=False, allow_nan=False)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(scratch, path)
        except (OSError, ValueError) as exc:
            scratch.unlink(missing_ok=True)
            raise StorageError(
                f"Cannot write {key!r} to {path}: {exc}. Free space or fix the folder's "
                "permissions, then write again."
            ) from exc

    def _collection_metadata(self, collection: str) -> dict[str, Any]:
        """The collection's metadata file as a mapping, as Qdrant keeps collection metadata
        (Edge has none): this package's record, and keys older versions wrote."""
        path = self._folder(collection) / RECORD_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StorageError(f"Cannot read {path}: {exc}") from exc
        try:
            metadata = json.loads(text)
        except ValueError as exc:
            raise StorageError(
                f"{path} is not valid JSON ({exc}). Delete it: the next write records the "
                "models that write (make sure they are the ones the collection was built with)."
            ) from exc
        if not isinstance(metadata, dict):
            raise StorageError(f"{path} does not hold a JSON object. Delete it, as above.")
        return metadata

    def delete_collection(self, collection: str) -> None:
        import shutil

        folder = self._folder(collection)
        with self._lock:
            shard = self._shards.pop(collection, None)
            if shard is not None:
                with _edge_errors(self, collection):
                    shard.close()
            if not (folder / CONFIG_FILE).is_file():
                return
            try:
                # The configuration first: a crash midway leaves no half-readable shard.
                (folder / CONFIG_FILE).unlink()
                shutil.rmtree(folder)
            except OSError as exc:
                raise StorageError(
                    f"Cannot delete the Edge collection {str(folder)!r}: {exc}"
                ) from exc

    def upsert(self, collection: str, points: Sequence[StoredPoint]) -> None:
        from qdrant_edge import Point, UpdateOperation

        operation = UpdateOperation.upsert_points(
            [
                Point(
                    id=p.id,
                    vector={name: _edge_vector(v) for name, v in p.vectors.items()},
                    payload=p.payload,
                )
                for p in points
            ]
        )
        needed = SAFETY_MARGIN_BYTES + UPSERT_GROWTH * sum(
            raw_point_bytes(p.vectors.values(), p.payload) for p in points
        )
        with self._lock:
            shard = self._shard(collection)
            require_free_space(
                self._folder(collection), needed, action=f"write {len(points)} points"
            )
            with _edge_errors(self, collection):
                shard.update(operation)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        from qdrant_edge import UpdateOperation

        needed = SAFETY_MARGIN_BYTES + UPSERT_GROWTH * _DELETE_RECORD_BYTES * len(ids)
        with self._lock:
            shard = self._shard(collection)
            require_free_space(self._folder(collection), needed, action=f"delete {len(ids)} points")
            with _edge_errors(self, collection):
                shard.update(UpdateOperation.delete_points(list(ids)))

    def delete_matching(self, collection: str, ids: Sequence[str], query_filter: Filter) -> None:
        from qdrant_client.http import models
        from qdrant_edge import UpdateOperation

        if not ids:
            return
        selector = models.Filter(must=[models.HasIdCondition(has_id=list(ids)), query_filter])
        needed = SAFETY_MARGIN_BYTES + UPSERT_GROWTH * _DELETE_RECORD_BYTES * len(ids)
        with self._lock:
            shard = self._shard(collection)
            require_free_space(self._folder(collection), needed, action=f"delete {len(ids)} points")
            with _edge_errors(self, collection):
                shard.update(UpdateOperation.delete_points_by_filter(to_edge_filter(selector)))

    def count_matching(self, collection: str, query_filter: Filter) -> int:
        from qdrant_edge import CountRequest

        with self._lock, _edge_errors(self, collection):
            request = CountRequest(exact=True, filter=to_edge_filter(query_filter))
            return int(self._shard(collection).count(request))

    def ensure_tenant_index(self, collection: str, key: str, *, integer: bool) -> bool:
        """Edge indexes payload fields as a server does: a keyword index with ``is_tenant``
        (an integer index for integer tenants), kept with the shard."""
        from qdrant_edge import IntegerIndexParams, KeywordIndexParams, UpdateOperation

        with self._lock:
            shard = self._shard(collection)
            with _edge_errors(self, collection):
                if key in shard.info().payload_schema:
                    return True
            params = (
                IntegerIndexParams(lookup=True, range=False)
                if integer
                else KeywordIndexParams(is_tenant=True)
            )
            require_free_space(
                self._folder(collection),
                SAFETY_MARGIN_BYTES,
                action=f"index the tenant field {key!r}",
            )
            with _edge_errors(self, collection):
                shard.update(UpdateOperation.create_field_index(key, params))
            return True

    def retrieve(
        self, collection: str, ids: Sequence[str], *, with_vectors: WithVectors = False
    ) -> list[StoredPoint]:
        wanted = with_vectors if isinstance(with_vectors, bool) else list(with_vectors)
        with self._lock, _edge_errors(self, collection):
            records = self._shard(collection).retrieve(
                list(ids), with_payload=True, with_vector=wanted
            )
        if not with_vectors:
            return payload_points(records)
        return [
            StoredPoint(
                id=str(r.id),
                vectors={name: _our_vector(v) for name, v in (r.vector or {}).items()},
                payload=r.payload or {},
            )
            for r in records
        ]

    def scroll_points(
        self, collection: str, *, batch_size: int, start: str | None = None
    ) -> Iterator[list[StoredPoint]]:
        from qdrant_edge import ScrollRequest

        offset: Any = start
        while True:
            with self._lock, _edge_errors(self, collection):
                records, offset = self._shard(collection).scroll(
                    ScrollRequest(
                        offset=offset, limit=batch_size, with_payload=True, with_vector=True
                    )
                )
            yield [
                StoredPoint(
                    id=str(r.id),
                    vectors={name: _our_vector(v) for name, v in (r.vector or {}).items()},
                    payload=r.payload or {},
                )
                for r in records
            ]
            if offset is None:
                return

    def count(self, collection: str) -> int:
        from qdrant_edge import CountRequest

        with self._lock, _edge_errors(self, collection):
            return int(self._shard(collection).count(CountRequest(exact=True)))

    def search(
        self,
        collection: str,
        queries: Sequence[BranchQuery],
        query_filter: Filter | None,
        *,
        routing: Routing | None = None,
    ) -> list[list[ScoredPoint]]:
        from qdrant_edge import Query, QueryBatchRequest, QueryRequest, SearchParams

        if routing:
            raise InvalidParameterError(
                "shard_key and read_consistency apply to a Qdrant cluster; Qdrant Edge is a "
                "single local shard. Drop them, or connect with url=."
            )
        edge_filter = to_edge_filter(query_filter)
        params = self._dense_search_params(collection)
        requests = [
            QueryRequest(
                limit=q.limit,
                query=Query.Nearest(_edge_vector(q.vector), using=q.vector_name),
                filter=edge_filter,
                with_payload=_payload_selector(q.with_payload),
                params=SearchParams(exact=True) if q.exact else params.get(q.vector_name),
            )
            for q in queries
        ]
        with self._lock, _edge_errors(self, collection):
            responses = self._shard(collection).query_batch(QueryBatchRequest(requests))
        return [
            [
                ScoredPoint(id=str(p.id), score=float(p.score), payload=p.payload or {})
                for p in response
            ]
            for response in responses
        ]

    def _dense_search_params(self, collection: str) -> dict[str, Any]:
        """The collection's search-time settings (quantisation rescoring, HNSW ef) as Edge
        ``SearchParams`` per dense vector, read once from its configuration."""
        with self._lock:
            params = self._search_params.get(collection)
            if params is None:
                layout = self.get_layout(collection)
                dense = layout.dense if layout is not None else {}
                params = {
                    name: _edge_search_params(info.storage)
                    for name, info in dense.items()
                    if info.storage is not None and _edge_search_params(info.storage) is not None
                }
                self._search_params[collection] = params
            return params

    def optimize(self, collection: str) -> None:
        """Flush to disk and build the search indexes (Edge has no background optimizer)."""
        with self._lock:
            shard = self._shard(collection)
            segments = self._folder(collection) / "segments"
            require_free_space(
                self._folder(collection),
                SAFETY_MARGIN_BYTES + OPTIMIZE_GROWTH * allocated_bytes(segments),
                action=f"build the search indexes of collection {collection!r}",
            )
            with _edge_errors(self, collection):
                shard.flush()
                shard.optimize()

    def close(self) -> None:
        with self._lock:
            shards, self._shards = self._shards, {}
            failure: StorageError | None = None
            for collection, shard in shards.items():
                try:  # closing flushes; on a full disk that can fail: close the others anyway
                    with _edge_errors(self, collection):
                        shard.close()
                except StorageError as exc:
                    failure = failure or exc
            if self._temporary is not None:
                self._temporary.cleanup()
            if failure is not None:
                raise failure


_DELETE_RECORD_BYTES = 64
"""A generous size for one id in a delete's WAL record."""


def _edge_storage_params(storage: VectorStorage) -> dict[str, Any]:
    """``EdgeVectorParams`` keywords for ``storage`` (none for the default, so a default
    collection's configuration is what it was before these settings existed)."""
    from qdrant_edge import (
        BinaryQuantizationConfig,
        HnswIndexConfig,
        Memory,
        ScalarQuantizationConfig,
        ScalarType,
    )

    params: dict[str, Any] = {}
    if storage.dense_on_disk:
        params["memory"] = Memory.Cold
    if storage.hnsw_on_disk:  # Edge needs the whole config: Qdrant's defaults
        params["hnsw_config"] = HnswIndexConfig(
            m=16, ef_construct=100, full_scan_threshold=10_000, memory=Memory.Cold
        )
    if storage.quantization is Quantization.INT8:  # the compressed copy stays in RAM
        params["quantization_config"] = ScalarQuantizationConfig(
            type=ScalarType.Int8, memory=Memory.Pinned
        )
    elif storage.quantization is Quantization.BINARY:
        params["quantization_config"] = BinaryQuantizationConfig(memory=Memory.Pinned)
    return params


def _storage_of(
    params: Mapping[str, Any], config: Mapping[str, Any], settings: Any
) -> VectorStorage | None:
    """A dense vector's storage as read from ``edge_config.json`` (None: not one this
    package describes), with the search-time settings kept in the metadata file."""
    quantization_config = params.get("quantization_config") or config.get("quantization_config")
    if not quantization_config:
        quantization = Quantization.NONE
    elif set(quantization_config) == {"scalar"}:
        quantization = Quantization.INT8
    elif set(quantization_config) == {"binary"}:
        quantization = Quantization.BINARY
    else:
        return None
    hnsw = params.get("hnsw_config") or config.get("hnsw_config") or {}
    return VectorStorage(
        quantization=quantization,
        dense_on_disk=_is_on_disk(params),
        hnsw_on_disk=_is_on_disk(hnsw),
    ).with_search_settings(settings if isinstance(settings, dict) else None)


def _is_on_disk(params: Mapping[str, Any]) -> bool:
    memory = params.get("memory")
    if memory is not None:
        return str(memory).lower() == "cold"
    return bool(params.get("on_disk"))


def _edge_search_params(storage: VectorStorage) -> Any:
    """Edge ``SearchParams`` for a dense vector kept as ``storage``; None: the defaults."""
    from qdrant_edge import QuantizationSearchParams, SearchParams

    quantization = None
    if storage.quantization is not Quantization.NONE:
        quantization = QuantizationSearchParams(
            rescore=storage.rescore, oversampling=storage.oversampling
        )
    if quantization is None and storage.hnsw_ef is None:
        return None
    return SearchParams(hnsw_ef=storage.hnsw_ef, quantization=quantization)


def _our_vector(vector: Any) -> Vector:
    if isinstance(vector, list):
        return [float(v) for v in vector]
    return SparseVector(indices=list(vector.indices), values=[float(v) for v in vector.values])


def _payload_selector(with_payload: bool | tuple[str, ...]) -> bool | list[str]:
    return with_payload if isinstance(with_payload, bool) else list(with_payload)


def _edge_vector(vector: Vector) -> Any:
    if isinstance(vector, SparseVector):
        from qdrant_edge import SparseVector as EdgeSparseVector

        return EdgeSparseVector(indices=vector.indices, values=vector.values)
    return vector


@contextmanager
def _edge_errors(storage: EdgeStorage, collection: str) -> Iterator[None]:
    """Edge reports most failures as a bare ``Exception``; give them our types and a fix."""
    try:
        yield
    except (CollectionNotFoundError, CollectionExistsError, InvalidParameterError):
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(f"collection {collection!r} in {storage!r}", exc) from exc
        message = str(exc)
        if "WouldBlock" in message or "Can't init WAL" in message:
            raise StorageError(
                f"Collection {collection!r} in {storage!r} is already open by another "
                "retriever or process. Close it there first (retriever.close()), or share one "
                "retriever."
            ) from exc
        raise StorageError(f"Qdrant Edge failed on collection {collection!r}: {message}") from exc
