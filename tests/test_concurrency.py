"""Concurrent use of one retriever: many async and threaded searches, and searches while
another thread ingests. Every concurrent answer must equal the sequential one, and no
search may ever see a half-written document.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document

from hybrid_retriever import HybridRetriever, ModelRecordWarning
from hybrid_retriever.documents import point_id, prepare_document
from hybrid_retriever.storage.base import StoredPoint

MakeRetriever = Callable[..., HybridRetriever]

K = 5


def demo_queries(documents: list[Document]) -> list[str]:
    """A few dozen distinct queries: the opening words of each demo document."""
    queries = list(dict.fromkeys(" ".join(d.page_content.split()[:6]) for d in documents))
    assert len(queries) >= 30
    return queries


def twin(retriever: HybridRetriever, **kwargs: Any) -> HybridRetriever:
    """A second retriever on the same storage object (shared, so never closed here), with a
    cold query cache, so that the concurrent calls also encode concurrently."""
    return HybridRetriever(
        storage=retriever.storage,
        collection_name=retriever.collection_name,
        dense_encoder=retriever.dense_encoder,
        sparse_encoder=retriever.sparse_encoder,
        **kwargs,
    )


def answers_of(docs: list[Document]) -> list[tuple[str, float]]:
    """Ids and fused scores: equal (==) however the queries were scheduled, since each
    query's vectors are computed the same way on every path (encoders/threads.py)."""
    return [(str(d.id), d.metadata["_score"]) for d in docs]


@pytest.mark.slow
async def test_a_thousand_concurrent_ainvoke_calls(
    demo_retriever: HybridRetriever, documents: list[Document]
) -> None:
    """All started at once on one loop: the first of each query encode in worker threads
    while the rest race them for the query cache."""
    queries = demo_queries(documents)
    sequential = {q: answers_of(demo_retriever.invoke(q, k=K)) for q in queries}
    concurrent = twin(demo_retriever)
    calls = [queries[n % len(queries)] for n in range(1_000)]

    results = await asyncio.gather(
        *(concurrent.ainvoke(q, k=K) for q in calls), return_exceptions=True
    )

    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    for query, docs in zip(calls, results, strict=True):
        assert answers_of(docs) == sequential[query], query  # type: ignore[arg-type]


@pytest.mark.slow
def test_eight_threads_calling_invoke(
    demo_retriever: HybridRetriever, documents: list[Document]
) -> None:
    """Cache off: each of the 8 threads encodes every query itself, both models at once."""
    queries = demo_queries(documents)
    sequential = {q: answers_of(demo_retriever.invoke(q, k=K)) for q in queries}
    concurrent = twin(demo_retriever, query_cache_size=0)
    start = threading.Barrier(8)

    def worker(offset: int) -> list[tuple[str, list[str]]]:
        start.wait()
        mine = queries[offset:] + queries[:offset]
        return [(q, answers_of(concurrent.invoke(q, k=K))) for q in mine]

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(worker, 4 * n) for n in range(8)]
    answers = [answer for future in futures for answer in future.result()]
    assert len(answers) == 8 * len(queries)
    for query, found in answers:
        assert found == sequential[query], query


# -- ingestion and search at the same time ------------------------------------------------

NEW_DOCUMENTS = 96
WRITES = 4
"""add_documents calls by the writer, each ending with the engine's optimize step."""
MARKER_QUERY = "zebra stripes"


def marker_documents() -> list[Document]:
    """All share the words of MARKER_QUERY, so every one that is fully written is found by
    both branches of that query (dense returns every point when prefetch_k exceeds the count)."""
    return [
        Document(
            id=f"zebra-{n}",
            page_content=f"Zebra stripes note {n}: striped zebra number {n} grazes at dawn.",
            metadata={"n": n, "kind": "marker"},
        )
        for n in range(NEW_DOCUMENTS)
    ]


class LiveCollection:
    """The demo corpus plus the marker documents a writer adds while readers search."""

    def __init__(self, make_retriever: MakeRetriever, documents: list[Document], **where: Any):
        self.retriever = make_retriever(collection_name="live", **where)
        self.retriever.add_documents(documents, show_progress=False)
        self.markers = marker_documents()
        self.expected = {
            point_id(d.id, d.page_content, d.metadata): d for d in [*documents, *self.markers]
        }
        self.marker_ids = {point_id(d.id, d.page_content, d.metadata) for d in self.markers}
        self.total = len(self.expected)
        self.problems: list[str] = []
        self.partial_views = 0
        """Searches that saw some but not all markers: proof that reads overlapped writes."""
        self.retriever.invoke(MARKER_QUERY)  # warm the query cache: readers then mostly search

    def search_kwargs(self) -> dict[str, int]:
        return {"k": self.total, "prefetch_k": self.total}

    def check(self, docs: list[Document], seen: set[str]) -> set[str]:
        """Record what is wrong with one search's answer; return the markers it found."""
        found = {d.metadata["_id"] for d in docs}
        if not seen <= found:
            self.problems.append(f"documents disappeared: {sorted(seen - found)[:3]}")
        for doc in docs:
            self.problems.extend(check_document(doc, self.expected, self.marker_ids))
        markers = found & self.marker_ids
        self.partial_views += 0 < len(markers) < len(self.marker_ids)
        return markers

    def check_final(self) -> None:
        final = self.retriever.invoke(MARKER_QUERY, **self.search_kwargs())
        assert self.marker_ids <= {d.metadata["_id"] for d in final}
        assert [p for d in final for p in check_document(d, self.expected, self.marker_ids)] == []
        assert self.retriever.count() == self.total


def writes(markers: list[Document]) -> list[list[Document]]:
    step = len(markers) // WRITES
    return [markers[start : start + step] for start in range(0, len(markers), step)]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["edge", "qdrant-client"])
def test_searches_never_see_half_written_documents(
    make_retriever: MakeRetriever, documents: list[Document], tmp_path: Path, engine: str
) -> None:
    """While one thread ingests in batches, three others search. Every document returned
    is complete (its own text and metadata), every marker document is found by both the
    dense and the sparse branch (a point missing a vector would lack one rank), and a
    document once seen never disappears again."""
    # Edge on disk, so its points can be read back with vectors after closing.
    where = {"path": str(tmp_path)} if engine == "edge" else {}
    live = LiveCollection(make_retriever, documents, engine=engine, **where)
    writing = threading.Event()
    writing.set()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for chunk in writes(live.markers):
                live.retriever.add_documents(chunk, batch_size=8, show_progress=False)
        except BaseException as exc:
            errors.append(exc)
        finally:
            writing.clear()

    def reader() -> None:
        seen: set[str] = set()
        try:
            while writing.is_set():
                seen = live.check(live.retriever.invoke(MARKER_QUERY, **live.search_kwargs()), seen)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    assert live.problems == []
    assert live.partial_views >= 1
    live.check_final()
    assert stored_vector_names(live.retriever, engine, tmp_path) == {
        i: {"dense", "sparse", "bm25"}
        for i in live.expected  # every branch: none half written
    }


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["edge", "qdrant-client"])
async def test_async_searches_during_async_ingestion(
    make_retriever: MakeRetriever, documents: list[Document], engine: str
) -> None:
    """The same guarantees through aadd_documents and ainvoke on one event loop."""
    live = LiveCollection(make_retriever, documents, engine=engine)
    done = asyncio.Event()

    async def writer() -> None:
        try:
            for chunk in writes(live.markers):
                await live.retriever.aadd_documents(chunk, batch_size=8, show_progress=False)
        finally:
            done.set()

    async def reader() -> None:
        seen: set[str] = set()
        while not done.is_set():
            docs = await live.retriever.ainvoke(MARKER_QUERY, **live.search_kwargs())
            seen = live.check(docs, seen)

    await asyncio.wait_for(asyncio.gather(writer(), *(reader() for _ in range(3))), 300)
    assert live.problems == []
    assert live.partial_views >= 1
    live.check_final()


@pytest.mark.parametrize("engine", ["edge", "qdrant-client"])
def test_writers_racing_to_create_one_collection(
    make_retriever: MakeRetriever, engine: str
) -> None:
    """Four threads start indexing into a collection that does not exist yet: exactly one
    creates it, the others find it, and every document of every writer is there. No writer
    sees the new collection without its model record (it would warn that the collection's
    models are unchecked, and record its own)."""
    retriever = make_retriever(collection_name="race", engine=engine)
    start = threading.Barrier(4)

    def writer(number: int) -> list[str]:
        docs = [
            Document(id=f"w{number}-{n}", page_content=f"Writer {number} line {n}.")
            for n in range(8)
        ]
        start.wait()
        return retriever.add_documents(docs, batch_size=4, show_progress=False)

    with warnings.catch_warnings(), ThreadPoolExecutor(4) as pool:
        warnings.simplefilter("error", ModelRecordWarning)  # raised in the writer's thread
        written = [id_ for ids in pool.map(writer, range(4)) for id_ in ids]
    assert len(set(written)) == 32
    assert retriever.count() == 32
    assert len(retriever.get_by_ids(written)) == 32


def test_the_check_reports_a_point_written_without_its_sparse_vector(
    make_retriever: MakeRetriever, documents: list[Document], tmp_path: Path
) -> None:
    """The detector used above works: a point stored with only its dense vector is flagged
    by the search check and by the stored-vector check."""
    live = LiveCollection(make_retriever, documents, engine="edge", path=str(tmp_path))
    marker = live.markers[0]
    torn = prepare_document(marker.page_content, marker.metadata, marker.id, position=0)
    dense = live.retriever.dense_encoder.encode_documents([marker.page_content])[0]
    live.retriever.storage.upsert(
        "live", [StoredPoint(id=torn.point_id, vectors={"dense": dense}, payload=torn.payload)]
    )
    live.check(live.retriever.invoke(MARKER_QUERY, **live.search_kwargs()), set())
    assert len(live.problems) == 1
    assert "found by one branch only" in live.problems[0]
    assert stored_vector_names(live.retriever, "edge", tmp_path)[torn.point_id] == {"dense"}


def check_document(doc: Document, expected: dict[str, Document], marker_ids: set[str]) -> list[str]:
    """What is wrong with one returned document (nothing, for a whole one)."""
    doc_id = doc.metadata["_id"]  # the point id, which ``expected`` is keyed by
    if doc_id not in expected:
        return [f"unknown id {doc_id}"]
    want = expected[doc_id]
    problems = []
    if doc.page_content != want.page_content:
        problems.append(f"{doc_id}: page_content {doc.page_content!r}")
    own = {k: v for k, v in doc.metadata.items() if not k.startswith("_")}
    if own != want.metadata or doc.id != (doc_id if want.id is None else str(want.id)):
        problems.append(f"{doc_id}: metadata {doc.metadata!r}")
    ranks = doc.metadata.get("_ranks") or {}
    if doc_id in marker_ids and (ranks.get("dense") is None or ranks.get("sparse") is None):
        problems.append(f"{doc_id}: found by one branch only, ranks {ranks}")
    return problems


def stored_vector_names(retriever: HybridRetriever, engine: str, path: Path) -> dict[str, set[str]]:
    """Each point's non-empty named vectors, read with the engine's own API."""
    if engine == "edge":
        from qdrant_edge import EdgeShard, ScrollRequest

        retriever.close()
        shard = EdgeShard.load(str(path / retriever.collection_name))
        try:
            records, _ = shard.scroll(ScrollRequest(limit=10_000, with_vector=True))
            return {str(r.id): vector_names(r.vector) for r in records}
        finally:
            shard.close()
    client = retriever.storage.client  # type: ignore[attr-defined]
    points, _ = client.scroll(
        retriever.collection_name, limit=10_000, with_payload=False, with_vectors=True
    )
    return {str(p.id): vector_names(p.vector) for p in points}


def vector_names(vector: Any) -> set[str]:
    """The named vectors a point really has (an empty one counts as missing)."""
    if not isinstance(vector, dict):
        return set()
    return {
        name
        for name, value in vector.items()
        if value is not None and len(getattr(value, "values", value)) > 0
    }
