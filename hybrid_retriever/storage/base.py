"""The seam between the retriever and a vector engine.

The retriever, ingestion and evaluation only talk to ``StorageBackend``. A
backend translates these few calls to its engine (qdrant-client for embedded,
server and cluster Qdrant; more engines can be added beside it) and translates
the engine's failures into the package's own errors.

Async methods default to running the sync method in a worker thread, which keeps
the event loop free for engines without a native async client; a backend that
has one overrides them.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hybrid_retriever.collection import CollectionLayout, CollectionSpec
from hybrid_retriever.errors import StorageError
from hybrid_retriever.fusion.rrf import BranchHit
from hybrid_retriever.vectors import SparseVector

if TYPE_CHECKING:
    from qdrant_client.http.models import Filter

Vector = list[float] | SparseVector

RECORD_KEY = "hybrid_retriever"
"""The key of this package's record (see ``model_record``) in a collection's metadata
(Qdrant's collection metadata; on Edge, the metadata file beside the shard)."""

COPY_KEY = "hybrid_retriever.copy"
"""Present in a collection's metadata while :func:`hybrid_retriever.move.copy_collection`
fills it (where from, and where to resume); removed when the copy is verified, in the
same write that adds the model record. A collection carrying it is refused on open
(:func:`refuse_unfinished_copy`): half of a collection must not pass for all of it."""


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """A point to write, or one read back: vectors by name and a JSON payload."""

    id: str
    vectors: Mapping[str, Vector]
    payload: dict[str, Any]


def payload_points(records: Iterable[Any]) -> list[StoredPoint]:
    """Engine records (anything with ``id`` and ``payload``) read without vectors."""
    return [StoredPoint(id=str(r.id), vectors={}, payload=r.payload or {}) for r in records]


WithVectors = bool | Sequence[str]
"""Which stored vectors a read returns: none (False), all (True), or these names."""


@dataclass(frozen=True, slots=True)
class BranchQuery:
    """One branch of a hybrid search: which named vector, what to search for, how deep."""

    vector_name: str
    vector: Vector
    limit: int
    with_payload: bool | tuple[str, ...] = True
    """True: the whole payload; a tuple: only these payload paths; False: none."""
    exact: bool = False
    """Search every point instead of the HNSW index: for checks that compare two engines
    (``move``), where the index's approximation would hide or fake a difference."""


@dataclass(frozen=True, slots=True)
class ScoredPoint(BranchHit):
    """One search result: id, the branch's raw score and the payload. A ``BranchHit``, so
    the fusions read a branch's results as the search returned them, with no copy (200
    objects a query at the default depth)."""

    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Routing:
    """Where a Qdrant cluster should read: which shard keys, and how many replicas must agree.

    ``read_consistency`` is an int (that many replicas) or "majority" / "quorum" / "all".
    Only distributed Qdrant uses it; in-process engines have one shard and refuse it.
    """

    shard_key: str | int | list[str | int] | None = None
    read_consistency: int | str | None = None

    def __bool__(self) -> bool:
        return self.shard_key is not None or self.read_consistency is not None


class StorageBackend(ABC):
    """What the package needs from a vector engine."""

    fetch_payloads_after_fusion: ClassVar[bool] = False
    """True where a lookup by id costs less than decoding every candidate's payload
    (in-process engines): the retriever then searches without payloads and fetches
    only the fused top k's. Over a network one round trip is cheaper, so False."""

    @abstractmethod
    def get_layout(self, collection: str) -> CollectionLayout | None:
        """The collection's vectors, or None when it does not exist."""

    @abstractmethod
    def create_collection(self, spec: CollectionSpec) -> None:
        """Create the collection; raise ``CollectionExistsError`` if someone else did first."""

    @abstractmethod
    def upsert(self, collection: str, points: Sequence[StoredPoint]) -> None:
        """Write points, replacing any with the same id; return once they are searchable."""

    @abstractmethod
    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Delete points by id; unknown ids are ignored."""

    @abstractmethod
    def retrieve(
        self, collection: str, ids: Sequence[str], *, with_vectors: WithVectors = False
    ) -> list[StoredPoint]:
        """The stored points among ``ids``: payloads, and the vectors ``with_vectors``
        names (none by default; MMR reads the dense ones)."""

    @abstractmethod
    def count(self, collection: str) -> int:
        """Exact number of points."""

    @abstractmethod
    def search(
        self,
        collection: str,
        queries: Sequence[BranchQuery],
        query_filter: Filter | None,
        *,
        routing: Routing | None = None,
    ) -> list[list[ScoredPoint]]:
        """Run every branch query in one round trip; one ranked list per query."""

    def delete_matching(self, collection: str, ids: Sequence[str], query_filter: Filter) -> None:
        """Delete the points among ``ids`` that match ``query_filter``, in one engine call
        (a tenant-bound delete: ``tenancy``); unknown or unmatched ids are ignored. Backends
        that cannot raise StorageError, never deleting more than asked."""
        raise StorageError(f"{self!r} cannot delete by ids and filter in one call.")

    def count_matching(self, collection: str, query_filter: Filter) -> int:
        """Exact number of points that match ``query_filter``."""
        raise StorageError(f"{self!r} cannot count the points that match a filter.")

    def ensure_tenant_index(self, collection: str, key: str, *, integer: bool) -> bool:
        """Make sure the payload field ``key`` holding tenants is indexed for tenants
        (Qdrant's ``is_tenant``; an integer index for ``integer`` tenants); True when such
        an index exists afterwards. An existing index on the field is left as it is. The
        default: no index (confinement never depends on one)."""
        return False

    def scroll_points(
        self, collection: str, *, batch_size: int, start: str | None = None
    ) -> Iterator[list[StoredPoint]]:
        """Every point with its vectors and payload, ``batch_size`` at a time, in id order,
        from id ``start`` on (inclusive; None: the first), to copy a collection (``add_bm25``,
        ``move``). Backends that cannot raise StorageError."""
        from hybrid_retriever.errors import StorageError

        raise StorageError(f"{self!r} cannot read points back with their vectors.")

    keeps_collection_record: ClassVar[bool] = False
    """True where :meth:`write_collection_record` keeps the record (this package's
    backends do); a backend without it opens collections with their models unchecked."""

    def read_collection_record(self, collection: str) -> dict[str, Any] | None:
        """The record this package keeps with ``collection`` (which models wrote its
        vectors, see ``model_record``), or None when it has none."""
        return None

    def write_collection_record(  # noqa: B027 - optional hook
        self, collection: str, record: Mapping[str, Any]
    ) -> None:
        """Keep ``record`` (JSON) with ``collection``, replacing any earlier one. It must
        never appear as a point: not in count, search, retrieve or listings."""

    def read_collection_metadata(self, collection: str) -> dict[str, Any]:
        """All of ``collection``'s metadata (this package's record under :data:`RECORD_KEY`,
        and any other key), to copy it with the collection; empty when it keeps none."""
        return {}

    def write_collection_metadata(self, collection: str, metadata: Mapping[str, Any]) -> None:
        """Merge ``metadata`` into ``collection``'s, as Qdrant's ``update_collection`` does:
        a key set to None is removed, others replaced or added."""
        raise StorageError(f"{self!r} cannot keep collection metadata.")

    def delete_collection(self, collection: str) -> None:
        """Drop ``collection`` and every point in it (``move`` with ``overwrite=True``)."""
        raise StorageError(f"{self!r} cannot delete a collection.")

    def create_recorded_collection(self, spec: CollectionSpec, record: Mapping[str, Any]) -> None:
        """Create the collection with ``record`` written, as one step for this process's
        readers where the engine allows: a writer that finds the collection between the two
        would take it for an older, unrecorded one and record its own models. Raises
        ``CollectionExistsError`` as :meth:`create_collection` does, and
        ``RecordNotWrittenError`` when the collection was made but the record was not."""
        self.create_collection(spec)
        write_record_after_create(self, spec.name, record)

    def optimize(self, collection: str) -> None:  # noqa: B027 - optional hook
        """Called after a bulk write: make it durable and fast to search.

        Engines that index in the background (a Qdrant server) need nothing here.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files and connections."""

    async def aget_layout(self, collection: str) -> CollectionLayout | None:
        return await asyncio.to_thread(self.get_layout, collection)

    async def acreate_collection(self, spec: CollectionSpec) -> None:
        await asyncio.to_thread(self.create_collection, spec)

    async def acreate_recorded_collection(
        self, spec: CollectionSpec, record: Mapping[str, Any]
    ) -> None:
        await asyncio.to_thread(self.create_recorded_collection, spec, record)

    async def aread_collection_record(self, collection: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.read_collection_record, collection)

    async def awrite_collection_record(self, collection: str, record: Mapping[str, Any]) -> None:
        await asyncio.to_thread(self.write_collection_record, collection, record)

    async def aupsert(self, collection: str, points: Sequence[StoredPoint]) -> None:
        await asyncio.to_thread(self.upsert, collection, points)

    async def aretrieve(
        self, collection: str, ids: Sequence[str], *, with_vectors: WithVectors = False
    ) -> list[StoredPoint]:
        return await asyncio.to_thread(self.retrieve, collection, ids, with_vectors=with_vectors)

    async def adelete(self, collection: str, ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete, collection, ids)

    async def adelete_matching(
        self, collection: str, ids: Sequence[str], query_filter: Filter
    ) -> None:
        await asyncio.to_thread(self.delete_matching, collection, ids, query_filter)

    async def aensure_tenant_index(self, collection: str, key: str, *, integer: bool) -> bool:
        return await asyncio.to_thread(self.ensure_tenant_index, collection, key, integer=integer)

    async def aoptimize(self, collection: str) -> None:
        await asyncio.to_thread(self.optimize, collection)

    async def asearch(
        self,
        collection: str,
        queries: Sequence[BranchQuery],
        query_filter: Filter | None,
        *,
        routing: Routing | None = None,
    ) -> list[list[ScoredPoint]]:
        return await asyncio.to_thread(
            self.search, collection, queries, query_filter, routing=routing
        )


class CollectionExistsError(Exception):
    """Internal signal: another writer created the collection between check and create."""


def refuse_unfinished_copy(metadata: Mapping[str, Any], where: str) -> None:
    """Raise ``IncompleteCopyError`` when ``metadata`` says a copy into it has not finished."""
    marker = metadata.get(COPY_KEY)
    if marker is None:
        return
    from hybrid_retriever.errors import IncompleteCopyError

    origin = ""
    if isinstance(marker, Mapping):
        origin = f" from collection {marker.get('collection')!r} in {marker.get('source')}"
    raise IncompleteCopyError(
        f"{where[0].upper()}{where[1:]} is an unfinished copy{origin}: it may hold only part "
        "of the points and has no model record yet. Run the same copy again to finish it "
        "(hybrid_retriever.move.copy_collection or `hybrid-retriever copy`), or drop it."
    )


class RecordNotWrittenError(StorageError):
    """The collection was created, but the record of its models could not be written."""


def write_record_after_create(
    storage: StorageBackend, collection: str, record: Mapping[str, Any]
) -> None:
    """:meth:`StorageBackend.write_collection_record` right after a create: a failure
    says the collection exists without its record."""
    try:
        storage.write_collection_record(collection, record)
    except StorageError as exc:
        raise RecordNotWrittenError(str(exc)) from exc
