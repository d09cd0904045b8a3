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
* the bindings hold the GIL during native calls and have no async API, so async
  methods run in a worker thread; a call blocks the event loop only for the
  native search itself (about a millisecond), never for encoding.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
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
    BranchQuery,
    CollectionExistsError,
    Routing,
    ScoredPoint,
    StorageBackend,
    StoredPoint,
    Vector,
    payload_points,
)
from hybrid_retriever.storage.edge_filters import to_edge_filter
from hybrid_retriever.vectors import SparseVector

if TYPE_CHECKING:
    from qdrant_client.http.models import Filter

CONFIG_FILE = "edge_config.json"
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

            with _edge_errors(self, collection):
                shard = EdgeShard.load(str(folder))
            self._shards[collection] = shard
            return shard

    # -- StorageBackend ----------------------------------------------------------------------

    def get_layout(self, collection: str) -> CollectionLayout | None:
        config_path = self._folder(collection) / CONFIG_FILE
        if not config_path.is_file():
            return None
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StorageError(f"Cannot read the Edge configuration {config_path}: {exc}") from exc
        dense = {
            name: DenseVectorInfo(size=int(params["size"]), distance=Distance(params["distance"]))
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
        )

        folder = self._folder(spec.name)
        config = EdgeConfig(
            vectors={
                spec.dense_vector_name: EdgeVectorParams(
                    size=spec.dense_size, distance=getattr(EdgeDistance, spec.distance.value)
                )
            },
            sparse_vectors={spec.sparse_vector_name: EdgeSparseVectorParams()},
        )
        with self._lock:
            if (folder / CONFIG_FILE).is_file():
                raise CollectionExistsError(spec.name)
            self._root.mkdir(parents=True, exist_ok=True)
            with _edge_errors(self, spec.name):
                self._shards[spec.name] = EdgeShard.create(str(folder), config)

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
        with self._lock, _edge_errors(self, collection):
            self._shard(collection).update(operation)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        from qdrant_edge import UpdateOperation

        with self._lock, _edge_errors(self, collection):
            self._shard(collection).update(UpdateOperation.delete_points(list(ids)))

    def retrieve(self, collection: str, ids: Sequence[str]) -> list[StoredPoint]:
        with self._lock, _edge_errors(self, collection):
            records = self._shard(collection).retrieve(
                list(ids), with_payload=True, with_vector=False
            )
        return payload_points(records)

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
        from qdrant_edge import Query, QueryBatchRequest, QueryRequest

        if routing:
            raise InvalidParameterError(
                "shard_key and read_consistency apply to a Qdrant cluster; Qdrant Edge is a "
                "single local shard. Drop them, or connect with url=."
            )
        edge_filter = to_edge_filter(query_filter)
        requests = [
            QueryRequest(
                limit=q.limit,
                query=Query.Nearest(_edge_vector(q.vector), using=q.vector_name),
                filter=edge_filter,
                with_payload=q.with_payload,
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

    def optimize(self, collection: str) -> None:
        """Flush to disk and build the search indexes (Edge has no background optimizer)."""
        with self._lock, _edge_errors(self, collection):
            shard = self._shard(collection)
            shard.flush()
            shard.optimize()

    def close(self) -> None:
        with self._lock:
            shards, self._shards = self._shards, {}
            for shard in shards.values():
                shard.close()
            if self._temporary is not None:
                self._temporary.cleanup()


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
        message = str(exc)
        if "WouldBlock" in message or "Can't init WAL" in message:
            raise StorageError(
                f"Collection {collection!r} in {storage!r} is already open by another "
                "retriever or process. Close it there first (retriever.close()), or share one "
                "retriever."
            ) from exc
        raise StorageError(f"Qdrant Edge failed on collection {collection!r}: {message}") from exc
