"""On-disk collections survive a killed writer and a clean restart, on both embedded engines.

Crash: a child process ingests 2,000 documents (Edge) and is SIGKILLed right as it
starts writing a batch (or, on Edge, as it starts the final optimize). Whatever it
acknowledged must be there, nothing may be half written, and simply running the same
ingestion again must give exactly one point per document. Edge folders can be opened by
one process at a time, so the child's progress is read from its stdout, never by opening
the store while it runs.

Restart: closing and reopening a collection changes no search result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document

from hybrid_retriever import HybridRetriever
from hybrid_retriever.documents import point_id

MakeRetriever = Callable[..., HybridRetriever]

ON_DISK_ENGINES = ("edge", "qdrant-client")
COLLECTION = "crash"
CORPUS_SIZES = {"edge": 2_000, "qdrant-client": 640}
"""qdrant-client's embedded mode commits every point to SQLite on its own (about 20 ms a
point here), so a few thousand points would take minutes; it gets a smaller corpus."""
BATCH_SIZE = 64
KILL_AT_BATCH = 2
"""The child is killed as batch 2 starts its write, after batches 0 and 1 were acknowledged."""
OPTIMIZE_CORPUS_SIZE = 256
CHILD_TIMEOUT_S = 300

# Run by the child: ingest the corpus in one add_documents call (what a user runs), with
# the real default models. The storage's upsert and optimize are wrapped only to announce
# each call before it starts and after it returns (ingestion has one write in flight).
CHILD_SCRIPT = """
import json, sys
from langchain_core.documents import Document
from hybrid_retriever import HybridRetriever

engine, path, corpus, batch_size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
records = json.loads(open(corpus, encoding="utf-8").read())
retriever = HybridRetriever(collection_name="crash", engine=engine, path=path)
upsert = retriever.storage.upsert
calls = []

def announced_upsert(collection, points):
    number = len(calls)
    calls.append(number)
    print(f"upserting {number} {len(points)}", flush=True)
    upsert(collection, points)
    print(f"upserted {number} {len(points)}", flush=True)

retriever.storage.upsert = announced_upsert
optimize = retriever.storage.optimize

def announced_optimize(collection):
    print("optimizing", flush=True)
    optimize(collection)
    print("optimized", flush=True)

retriever.storage.optimize = announced_optimize
documents = [Document(id=i, page_content=t, metadata={"n": n}) for n, (i, t) in enumerate(records)]
retriever.add_documents(documents, batch_size=batch_size, show_progress=False)
print("done", flush=True)
"""


def corpus(size: int) -> list[Document]:
    """Short, distinct texts with explicit ids (so a rerun writes the same point ids)."""
    return [
        Document(
            id=f"doc-{n}",
            page_content=f"Record {n}: topic {n % 37}, item {n * 7 % 101}.",
            metadata={"n": n},
        )
        for n in range(size)
    ]


def run_and_kill(
    engine: str, path: Path, documents: list[Document], tmp_path: Path, kill_on: str
) -> int:
    """Start the child, SIGKILL it as soon as it prints a line starting with ``kill_on``;
    return how many documents it had acknowledged."""
    corpus_file = tmp_path / "corpus.json"
    corpus_file.write_text(json.dumps([[d.id, d.page_content] for d in documents]))
    script = tmp_path / "ingest_child.py"
    script.write_text(CHILD_SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    child = subprocess.Popen(
        [sys.executable, str(script), engine, str(path), str(corpus_file), str(BATCH_SIZE)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    watchdog = threading.Timer(CHILD_TIMEOUT_S, child.kill)
    watchdog.start()
    acknowledged = 0
    lines: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            lines.append(line.strip())
            if line.startswith("upserted "):
                acknowledged += int(line.split()[2])
            if line.startswith(kill_on):
                child.send_signal(signal.SIGKILL)
                break
        child.wait(timeout=60)
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL, (child.returncode, lines[-5:])
    assert "done" not in lines
    return acknowledged


def stored_points(engine: str, path: Path, collection: str) -> list[tuple[str, set[str], Any]]:
    """(id, vector names, payload) of every point, read with the engine's own API (the
    retriever's storage must be closed first), so a missing vector cannot hide."""
    if engine == "edge":
        from qdrant_edge import EdgeShard, ScrollRequest

        shard = EdgeShard.load(str(path / collection))
        try:
            records, offset = [], None
            while True:
                page, offset = shard.scroll(
                    ScrollRequest(offset=offset, limit=500, with_payload=True, with_vector=True)
                )
                records.extend(page)
                if offset is None:
                    break
            return [(str(r.id), _names(r.vector), r.payload) for r in records]
        finally:
            shard.close()
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(path))
    try:
        points, next_page = [], None
        while True:
            page, next_page = client.scroll(
                collection, offset=next_page, limit=500, with_payload=True, with_vectors=True
            )
            points.extend(page)
            if next_page is None:
                break
        return [(str(p.id), _names(p.vector), p.payload) for p in points]
    finally:
        client.close()


def _names(vector: Any) -> set[str]:
    """The named vectors a point really has (empty ones count as missing)."""
    if not isinstance(vector, dict):
        return set()
    names = set()
    for name, value in vector.items():
        values = getattr(value, "values", value)
        if values is not None and len(values) > 0:
            names.add(name)
    return names


def check_points_complete(
    points: list[tuple[str, set[str], Any]], expected: dict[str, Document]
) -> None:
    """Every stored point is a whole document: a known id, every vector (dense, SPLADE,
    BM25: a new collection's default), its own payload."""
    ids = [point for point, _, _ in points]
    assert len(ids) == len(set(ids)), "duplicate point ids"
    for point, names, payload in points:
        assert point in expected, point
        assert names == {"dense", "sparse", "bm25"}, (point, names)
        assert payload == {
            "page_content": expected[point].page_content,
            "metadata": expected[point].metadata,
            "document_id": expected[point].id,
        }


@pytest.mark.slow
@pytest.mark.parametrize("engine", ON_DISK_ENGINES)
def test_killed_ingestion_resumes_to_exactly_one_point_per_document(
    make_retriever: MakeRetriever, tmp_path: Path, engine: str
) -> None:
    """Killed as a batch write starts: nothing acknowledged is lost, nothing is half
    written, and rerunning the same ingestion gives exactly one point per document."""
    size = CORPUS_SIZES[engine]
    documents = corpus(size)
    expected = {point_id(d.id, d.page_content, d.metadata): d for d in documents}
    path = tmp_path / "db"

    acknowledged = run_and_kill(
        engine, path, documents, tmp_path, kill_on=f"upserting {KILL_AT_BATCH} "
    )
    assert acknowledged == KILL_AT_BATCH * BATCH_SIZE

    # After the crash: the acknowledged batches are there, the killed one wholly or in
    # part (qdrant-client writes point by point), and nothing is half written.
    after_crash = stored_points(engine, path, COLLECTION)
    assert acknowledged <= len(after_crash) <= acknowledged + BATCH_SIZE
    check_points_complete(after_crash, expected)
    assert set(list(expected)[:acknowledged]) <= {point for point, _, _ in after_crash}

    resume_and_check(make_retriever, engine, path, documents, expected)


@pytest.mark.slow
def test_edge_killed_while_optimizing_reopens_whole(
    make_retriever: MakeRetriever, tmp_path: Path
) -> None:
    """Edge's optimize (flush, then rebuild segments) runs after the last write; a kill in
    the middle of it loses nothing that was acknowledged and leaves a shard that opens,
    searches and takes writes."""
    documents = corpus(OPTIMIZE_CORPUS_SIZE)
    expected = {point_id(d.id, d.page_content, d.metadata): d for d in documents}
    path = tmp_path / "db"

    acknowledged = run_and_kill("edge", path, documents, tmp_path, kill_on="optimizing")
    assert acknowledged == OPTIMIZE_CORPUS_SIZE

    after_crash = stored_points("edge", path, COLLECTION)
    assert len(after_crash) == OPTIMIZE_CORPUS_SIZE
    check_points_complete(after_crash, expected)

    retriever = make_retriever(collection_name=COLLECTION, engine="edge", path=str(path))
    top = retriever.invoke(documents[7].page_content, k=3)
    assert top[0].id == documents[7].id
    assert top[0].metadata["_id"] == list(expected)[7]
    extra = Document(id="extra", page_content="One more record after the crash.")
    retriever.add_documents([extra], show_progress=False)
    assert retriever.count() == OPTIMIZE_CORPUS_SIZE + 1
    assert len(retriever.get_by_ids(list(expected))) == OPTIMIZE_CORPUS_SIZE


def resume_and_check(
    make_retriever: MakeRetriever,
    engine: str,
    path: Path,
    documents: list[Document],
    expected: dict[str, Document],
) -> None:
    """Run the same ingestion again in this process: exactly one whole point per document."""
    retriever = make_retriever(collection_name=COLLECTION, engine=engine, path=str(path))
    returned = retriever.add_documents(documents, batch_size=BATCH_SIZE, show_progress=False)
    assert returned == [d.id for d in documents]
    assert retriever.count() == len(documents)
    found = retriever.get_by_ids(returned)
    assert found == documents
    retriever.close()

    resumed = stored_points(engine, path, COLLECTION)
    assert len(resumed) == len(documents)
    assert {point for point, _, _ in resumed} == set(expected)
    check_points_complete(resumed, expected)


# -- restart -----------------------------------------------------------------------------

RESTART_QUERIES = [
    "what causes type 2 diabetes?",
    "how are planets around other stars detected",
    "why does bread rise",
    "history of writing systems",
    "learned sparse retrieval",
    "vitamin from sunlight",
]


def answers(retriever: HybridRetriever, **options: Any) -> list[list[tuple[str, float]]]:
    return [
        [
            (str(d.id), d.metadata["_score"])
            for d in retriever.invoke(q, k=8, prefetch_k=20, **options)
        ]
        for q in RESTART_QUERIES
    ]


def assert_same_answers(
    got: list[list[tuple[str, float]]], expected: list[list[tuple[str, float]]]
) -> None:
    """Same ids in the same order; scores equal up to float32 rounding: qdrant-client's
    embedded mode scores with numpy, whose last bit can vary from one call to the next, and
    Edge may sum a sparse dot product in another order once a segment is reloaded."""
    for query, mine, theirs in zip(RESTART_QUERIES, got, expected, strict=True):
        assert [i for i, _ in mine] == [i for i, _ in theirs], query
        assert [s for _, s in mine] == pytest.approx([s for _, s in theirs], rel=1e-5), query


@pytest.mark.parametrize("engine", ON_DISK_ENGINES)
def test_reopened_collection_answers_the_same(
    make_retriever: MakeRetriever, documents: list[Document], tmp_path: Path, engine: str
) -> None:
    """Close and reopen: same count, same ids in the same order with the same scores."""
    first = make_retriever(collection_name="restart", engine=engine, path=str(tmp_path))
    first.add_documents(documents, show_progress=False)
    before = answers(first)
    assert first.count() == len(documents)
    first.close()

    second = make_retriever(collection_name="restart", engine=engine, path=str(tmp_path))
    assert_same_answers(answers(second), before)  # the first call after opening: a search
    assert second.count() == len(documents)


@pytest.mark.parametrize("engine", ON_DISK_ENGINES)
def test_writes_after_indexing_survive_a_restart(
    make_retriever: MakeRetriever, documents: list[Document], tmp_path: Path, engine: str
) -> None:
    """An overwrite, then deletes made after the last bulk write (so with no flush or
    optimize since) are still there after close and reopen."""
    first = make_retriever(collection_name="restart", engine=engine, path=str(tmp_path))
    ids = first.add_documents(documents, show_progress=False)
    rewritten = Document(page_content="Rewritten: sourdough bread text.", id=documents[5].id)
    assert first.add_documents([rewritten], show_progress=False) == [ids[5]]
    first.delete(ids[:5])
    # The model branches: BM25's IDF, which the engine computes, may still count deleted
    # points until the collection is reopened or optimized (seen on Edge), so its scores
    # can move across a restart; the points themselves are checked above and below.
    expected = answers(first, branches=["dense", "sparse"])
    first.close()

    second = make_retriever(collection_name="restart", engine=engine, path=str(tmp_path))
    assert second.count() == len(documents) - 5
    assert second.get_by_ids(ids[:5]) == []
    assert [d.page_content for d in second.get_by_ids([ids[5]])] == [rewritten.page_content]
    assert_same_answers(answers(second, branches=["dense", "sparse"]), expected)
    assert {d.id for d in second.invoke("sourdough bread", k=50, branches=["bm25"])} <= {
        str(i) for i in ids[5:]
    }  # BM25 finds no deleted document
