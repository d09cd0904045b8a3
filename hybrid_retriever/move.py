"""Copying a collection to another engine or place: Edge to a Qdrant server and back.

:func:`copy_collection` reads every point of a collection with its payload and all its
named vectors (dense, SPLADE, and BM25 when present), writes them by id into a collection
of the same layout elsewhere (a BM25 vector keeps Qdrant's IDF modifier), checks the copy
and only then writes the source's metadata into it: the model record (``model_record``)
and any other key the source keeps (e.g. the weights of the November 2026 calibration).
No model runs, so the copy is as fast as the two engines read and write.

Fusion settings are not part of a collection: ``hybrid-retriever tune`` writes them to
a file (``fusion.json``) that the application loads, so they move with the application,
not with the data. What a collection does keep (its metadata) is copied whole.

Why the record goes last: a target being filled carries a marker (:data:`COPY_KEY`) and
no record. Opening it raises ``IncompleteCopyError``, so half of a collection never
passes for all of it, and a writer cannot record its own models into it. The marker also
holds a checkpoint, the id to resume from: run the same copy again after a crash or a
kill and it continues there. Points are upserted by id, so a batch written twice is
written once, and nothing is lost: the checkpoint moves only after its batch is written.

The check: the two collections hold the same number of points, and for up to
``verify_queries`` sampled points, searching each branch with the point's own stored
vector (no encoding needed) gives the same top 10 in both, searched exactly (the HNSW
index is approximate, and would make two identical collections differ). Copy while
nothing writes to the source: points added during the copy may be missed (the count
check then fails, and says so).

Speed (``benchmarks/move_collection.py``, 100,000 points): the copy runs at the slower
engine's read or write speed. qdrant-client's embedded mode is the slow one, and only a
stand-in for a server: in memory it takes several hundred points a second, on disk it
commits each point to SQLite on its own (about 35 a second on a busy 2-core machine), and
its sparse search is pure Python (tens of seconds a query at 100k points): lower
``verify_queries`` there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from hybrid_retriever.advice import advise
from hybrid_retriever.collection import CollectionLayout, CollectionSpec
from hybrid_retriever.errors import (
    CollectionMismatchError,
    CollectionNotFoundError,
    CopyVerificationError,
    IncompleteCopyError,
    InvalidParameterError,
    TargetNotEmptyError,
)
from hybrid_retriever.ingestion import DEFAULT_BATCH_SIZE
from hybrid_retriever.storage.base import (
    COPY_KEY,
    RECORD_KEY,
    BranchQuery,
    ScoredPoint,
    StorageBackend,
    StoredPoint,
)
from hybrid_retriever.storage.point_copy import copy_points
from hybrid_retriever.vectors import SparseVector

DEFAULT_VERIFY_QUERIES = 100
TOP_K = 10
CHECKPOINT_SECONDS = 5.0
"""How often the resume point is written into the target's metadata (one metadata
update: on a Qdrant cluster a consensus operation, so not after every batch)."""
SCORE_TOLERANCE = 1e-4
"""Two engines compute one score with different float rounding (Rust SIMD, NumPy):
scores within this (relative) are the same score, and their order a tie."""

StorageArguments = StorageBackend | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What :func:`copy_collection` did and found."""

    collection: str
    target_collection: str
    source_points: int
    target_points: int
    copied_points: int
    """Points written by this call (all of them, or those after the checkpoint it resumed at)."""
    resumed: bool
    """True when this call finished an earlier, interrupted copy."""
    queries_checked: int
    """Sampled points whose vectors were searched in both collections, per branch."""
    disagreements: dict[str, int] = field(default_factory=dict)
    """Per vector name, how many of those searches gave another top 10 (all 0 on success)."""
    seconds: float = 0.0


def copy_collection(
    collection: str,
    *,
    source: StorageArguments,
    target: StorageArguments,
    target_collection: str | None = None,
    overwrite: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    verify_queries: int = DEFAULT_VERIFY_QUERIES,
    show_progress: bool = True,
) -> CopyReport:
    """Copy ``collection`` from ``source`` to ``target`` (as ``target_collection``, by
    default the same name), check it, and return what was done.

    ``source`` and ``target`` are storages (``EdgeStorage``, ``QdrantClientStorage``) or
    the connection arguments of ``HybridRetriever``, e.g. ``{"path": "./qdrant_data"}``,
    ``{"url": "http://localhost:6333", "api_key": ...}``, ``{"path": "./local",
    "engine": "qdrant-client"}``; ``cluster=ClusterOptions(...)`` lays out a new collection
    on a cluster. Storages opened here are closed on return.

    A target that exists is resumed when it is this copy's, unfinished; taken when it is
    empty and of the same layout; otherwise refused with ``TargetNotEmptyError`` unless
    ``overwrite=True``, which drops it first. Raises ``CopyVerificationError`` (the target
    stays marked unfinished) when counts or searches differ.
    """
    if batch_size < 1:
        raise InvalidParameterError(f"batch_size must be >= 1, got {batch_size}.")
    if verify_queries < 0:
        raise InvalidParameterError(f"verify_queries must be >= 0, got {verify_queries}.")
    target_name = target_collection or collection
    started = time.perf_counter()
    with ExitStack() as stack:
        source_storage = stack.enter_context(_opened(source, collection))
        target_storage = stack.enter_context(_opened(target, target_name))
        if _describe(source_storage) == _describe(target_storage) and target_name == collection:
            raise InvalidParameterError(
                f"Source and target are the same collection {collection!r} in "
                f"{source_storage!r}: name another target or target_collection."
            )
        copy = _Copy(source_storage, collection, target_storage, target_name, batch_size)
        resume_from, resumed = copy.prepare_target(overwrite=overwrite)
        copied = copy.points(resume_from, samples=verify_queries, show_progress=show_progress)
        checked = copy.verify(verify_queries)
        copy.finish()
    return CopyReport(
        collection=collection,
        target_collection=target_name,
        source_points=checked.source_points,
        target_points=checked.target_points,
        copied_points=copied,
        resumed=resumed,
        queries_checked=checked.queries_checked,
        disagreements=checked.disagreements,
        seconds=round(time.perf_counter() - started, 3),
    )


@contextmanager
def _opened(where: StorageArguments, collection: str) -> Iterator[StorageBackend]:
    if isinstance(where, StorageBackend):
        yield where
        return
    from hybrid_retriever.storage.connect import open_storage

    storage = open_storage(**{**where, "collection": collection})
    try:
        yield storage
    finally:
        storage.close()


def _describe(storage: StorageBackend) -> str:
    """Where a storage keeps its data, stable from one run to the next (the marker's
    ``source``): an Edge folder by its absolute path."""
    from hybrid_retriever.storage.edge import EdgeStorage

    if isinstance(storage, EdgeStorage):
        return f"EdgeStorage(path={str(storage.root.resolve())!r})"
    return repr(storage)


def spec_of(layout: CollectionLayout, name: str) -> CollectionSpec:
    """The ``CollectionSpec`` that creates ``layout`` under ``name``: one dense vector, one
    sparse vector without IDF (SPLADE), at most one with IDF (BM25); anything else was not
    written by this package, and is refused rather than copied in part."""
    dense = list(layout.dense.items())
    splade = [n for n, info in layout.sparse.items() if not info.idf_modifier]
    bm25 = [n for n, info in layout.sparse.items() if info.idf_modifier]
    if len(dense) != 1 or len(splade) != 1 or len(bm25) > 1 or not dense[0][0]:
        raise CollectionMismatchError(
            f"Collection {name!r} has dense vectors {sorted(layout.dense)} and sparse vectors "
            f"{sorted(layout.sparse)}; copy_collection copies this package's layout (one named "
            "dense vector, one SPLADE vector, at most one BM25 vector with the IDF modifier). "
            "Copy other collections with Qdrant's snapshots or migration tool."
        )
    ((dense_name, dense_info),) = dense
    return CollectionSpec(
        name=name,
        dense_vector_name=dense_name,
        dense_size=dense_info.size,
        distance=dense_info.distance,
        sparse_vector_name=splade[0],
        bm25_vector_name=bm25[0] if bm25 else None,
        storage=dense_info.storage,  # quantisation and on-disk settings travel too
    )


@dataclass(frozen=True, slots=True)
class _Checked:
    source_points: int
    target_points: int
    queries_checked: int
    disagreements: dict[str, int]


class _Copy:
    """One copy's steps, in order: prepare the target, copy, verify, finish."""

    def __init__(
        self,
        source: StorageBackend,
        collection: str,
        target: StorageBackend,
        target_name: str,
        batch_size: int,
    ) -> None:
        self.source, self.collection = source, collection
        self.target, self.target_name = target, target_name
        self.batch_size = batch_size
        layout = source.get_layout(collection)
        if layout is None:
            from hybrid_retriever.storage.connect import missing_collection_message

            raise CollectionNotFoundError(missing_collection_message(source, collection))
        self.layout = layout
        self.spec = spec_of(layout, target_name)
        self.metadata = source.read_collection_metadata(collection)
        if COPY_KEY in self.metadata:
            raise IncompleteCopyError(
                f"Collection {collection!r} in {source!r} is itself an unfinished copy; "
                "finish that copy first (run it again)."
            )
        self.source_points = source.count(collection)
        self.marker = {
            "source": _describe(source),
            "collection": collection,
            "points": self.source_points,
        }
        self.samples: list[StoredPoint] = []
        self._seen = 0

    def prepare_target(self, *, overwrite: bool) -> tuple[str | None, bool]:
        """Make the target ready; return (id to resume from, whether this resumes)."""
        layout = self.target.get_layout(self.target_name)
        if layout is None:
            self._create()
            return None, False
        metadata = self.target.read_collection_metadata(self.target_name)
        marker = metadata.get(COPY_KEY)
        fits = _same_layout(layout, self.layout)
        ours = isinstance(marker, Mapping) and all(
            marker.get(k) == self.marker[k] for k in ("source", "collection")
        )
        if fits and ours and isinstance(marker, Mapping):
            start = marker.get("resume_from")
            return (str(start) if start is not None else None), True
        points = self.target.count(self.target_name)
        if fits and marker is None and RECORD_KEY not in metadata and points == 0:
            self._mark()  # an empty collection of the same layout (a copy killed at once)
            return None, False
        if overwrite:
            self.target.delete_collection(self.target_name)
            self._create()
            return None, False
        if marker is not None:
            what = f"an unfinished copy of another collection ({marker})"
        elif not fits:
            what = "a collection of another layout"
        else:
            what = f"a collection with {points} points"
        fix = advise(
            python="Pass another target_collection=, or overwrite=True to replace it.",
            cli="Pass another --to-collection NAME, or --overwrite to replace it.",
        )
        raise TargetNotEmptyError(
            f"The target {self.target_name!r} in {self.target!r} is {what}. Nothing was "
            f"written. {fix}"
        )

    def _create(self) -> None:
        self.target.create_collection(self.spec)
        self._mark()

    def _mark(self, resume_from: str | None = None) -> None:
        marker: dict[str, Any] = dict(self.marker)
        if resume_from is not None:
            marker["resume_from"] = resume_from
        self.target.write_collection_metadata(self.target_name, {COPY_KEY: marker})

    def points(self, start: str | None, *, samples: int, show_progress: bool) -> int:
        """Copy from ``start`` on, keeping every n-th point to search with (``samples``)."""
        stride = max(1, self.source_points // max(1, samples))
        last_checkpoint = time.monotonic()

        def after_batch(points: list[StoredPoint]) -> None:
            nonlocal last_checkpoint
            for point in points:
                if self._seen % stride == 0:
                    self.samples.append(point)
                self._seen += 1
            if time.monotonic() - last_checkpoint >= CHECKPOINT_SECONDS:
                self._mark(resume_from=points[-1].id)  # inclusive: rewrites one point
                last_checkpoint = time.monotonic()

        copied = copy_points(
            self.source,
            self.collection,
            self.target,
            self.target_name,
            batch_size=self.batch_size,
            start=start,
            after_batch=after_batch,
            description=f"Copying {self.collection!r}",
            total=self.source_points,
            show_progress=show_progress,
        )
        self.target.optimize(self.target_name)
        return copied

    def verify(self, queries: int) -> _Checked:
        target_points = self.target.count(self.target_name)
        source_points = self.source.count(self.collection)
        if target_points != source_points:
            raise CopyVerificationError(
                f"The copy {self.target_name!r} holds {target_points} points, the source "
                f"{source_points}. Was the source written during the copy? Run the copy again "
                "while nothing writes to it (overwrite=True / --overwrite starts afresh). The "
                "target stays marked unfinished."
            )
        samples = self._samples(queries)
        disagreements: dict[str, int] = {}
        for name in [*self.layout.dense, *self.layout.sparse]:
            pairs = [
                (p.id, BranchQuery(name, p.vectors[name], TOP_K, with_payload=False, exact=True))
                for p in samples
                if _searchable(p.vectors.get(name))
            ]
            if not pairs:
                continue
            ours = _exact_search(self.source, self.collection, [q for _, q in pairs])
            theirs = _exact_search(self.target, self.target_name, [q for _, q in pairs])
            differing = [
                point_id
                for (point_id, _), a, b in zip(pairs, ours, theirs, strict=True)
                if not same_top(a, b)
            ]
            disagreements[name] = len(differing)
            if differing:
                raise CopyVerificationError(
                    f"Searching {name!r} with the stored vectors of {len(differing)} of "
                    f"{len(pairs)} sampled points gives another top {TOP_K} in the copy than "
                    f"in the source (first: point {differing[0]!r}). The target stays marked "
                    "unfinished; run the copy again with overwrite=True (--overwrite)."
                )
        return _Checked(source_points, target_points, len(samples), disagreements)

    def _samples(self, queries: int) -> list[StoredPoint]:
        """Points spread over the collection, seen during the copy; topped up from its
        start when this run copied few (it resumed near the end)."""
        samples = self.samples[:queries]
        if len(samples) < queries:
            known = {p.id for p in samples}
            for batch in self.source.scroll_points(self.collection, batch_size=queries):
                samples += [p for p in batch if p.id not in known][: queries - len(samples)]
                break
        return samples

    def finish(self) -> None:
        """The source's metadata (model record included), and the marker removed, in one
        write: the moment the target becomes a collection that opens."""
        self.target.write_collection_metadata(self.target_name, {**self.metadata, COPY_KEY: None})


def _exact_search(
    storage: StorageBackend, collection: str, queries: list[BranchQuery]
) -> list[list[ScoredPoint]]:
    import warnings

    with warnings.catch_warnings():  # qdrant-client's embedded mode is always exact, and says so
        warnings.filterwarnings("ignore", message="Local mode performs exact")
        return storage.search(collection, queries, None)


def _same_layout(a: CollectionLayout, b: CollectionLayout) -> bool:
    return dict(a.dense) == dict(b.dense) and dict(a.sparse) == dict(b.sparse)


def _searchable(vector: object) -> bool:
    if isinstance(vector, SparseVector):
        return bool(vector.indices)
    return isinstance(vector, list) and bool(vector)


def same_top(a: Sequence[ScoredPoint], b: Sequence[ScoredPoint]) -> bool:
    """Whether two top-k lists are the same ranking: scores equal rank by rank (within
    :data:`SCORE_TOLERANCE`), and the same ids except where equal scores make the order,
    or the last place, a tie."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if not _close(x.score, y.score):
            return False
    if not a:
        return True
    last = a[-1].score
    above_a = {p.id: p.score for p in a if not _close(p.score, last)}
    above_b = {p.id: p.score for p in b if not _close(p.score, last)}
    # Which of the ids tied for last place made the cut is arbitrary; the others must agree.
    return above_a.keys() == above_b.keys() and all(
        _close(score, above_b[point_id]) for point_id, score in above_a.items()
    )


def _close(x: float, y: float) -> bool:
    return abs(x - y) <= SCORE_TOLERANCE * max(1.0, abs(x), abs(y))
