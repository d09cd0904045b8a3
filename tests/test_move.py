"""Moving a collection (``hybrid_retriever.move``): Edge to qdrant-client's embedded mode
(standing in for a Qdrant server, which this machine does not have) and back, real models.

A round trip keeps counts, payloads, every named vector (BM25 with its IDF modifier), the
model record and the rankings; a copy killed midway resumes from its checkpoint without
losing or duplicating a point, and opens only once finished; a target holding other data
is refused unless overwrite is asked for; and each failure has its own error type.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document

from hybrid_retriever import HybridRetriever
from hybrid_retriever.errors import (
    CollectionMismatchError,
    CollectionNotFoundError,
    CopyVerificationError,
    IncompleteCopyError,
    InvalidParameterError,
    TargetNotEmptyError,
)
from hybrid_retriever.move import copy_collection, same_top
from hybrid_retriever.storage.base import COPY_KEY, RECORD_KEY, ScoredPoint, StoredPoint
from hybrid_retriever.storage.connect import open_storage
from hybrid_retriever.vectors import SparseVector
from tests.cli_runner import ENV, ok, one_line_error, run

pytest.importorskip("Stemmer", reason="the bm25 extra (PyStemmer) is not installed")

TOPICS = ["bread rises with yeast", "the moon landing", "vector search engines", "tomato soil"]
DOCUMENTS = [
    Document(
        # Lengths differ within a topic, so no two documents tie in BM25: rankings are exact.
        page_content=f"Note {i}: {TOPICS[i % 4]}." + "".join(f" aside{j}" for j in range(i // 4)),
        metadata={"n": i, "topic": TOPICS[i % 4], "tags": ["a", str(i)]},
        id=f"note-{i}",
    )
    for i in range(60)
]
QUERIES = ["why does bread rise", "Apollo moon", "nearest neighbour vectors"]
LEGACY_KEY = "hybrid_retriever.calibration"


@pytest.fixture()
def edge_source(tmp_path: Path, make_retriever: Any) -> Iterator[Path]:
    """Collection "notes" in an Edge folder, with a BM25 branch and a legacy metadata key."""
    path = tmp_path / "edge"
    retriever = make_retriever(collection_name="notes", path=path, bm25_encoder=True)
    retriever.add_documents(DOCUMENTS, show_progress=False)
    retriever.storage.write_collection_metadata("notes", {LEGACY_KEY: {"weights": [1, 2]}})
    retriever.close()
    yield path


def points(where: dict[str, Any], collection: str) -> dict[str, StoredPoint]:
    storage = open_storage(**where, collection=collection)
    try:
        found: dict[str, StoredPoint] = {}
        for batch in storage.scroll_points(collection, batch_size=17):
            for point in batch:
                assert point.id not in found, f"point {point.id} read twice"
                found[point.id] = point
        return found
    finally:
        storage.close()


def metadata(where: dict[str, Any], collection: str) -> dict[str, Any]:
    storage = open_storage(**where, collection=collection)
    try:
        return storage.read_collection_metadata(collection)
    finally:
        storage.close()


def assert_same_points(a: dict[str, StoredPoint], b: dict[str, StoredPoint]) -> None:
    assert a.keys() == b.keys()
    for point_id, x in a.items():
        y = b[point_id]
        assert x.payload == y.payload
        assert x.vectors.keys() == y.vectors.keys()
        for name, v in x.vectors.items():
            w = y.vectors[name]
            if isinstance(v, SparseVector):
                assert isinstance(w, SparseVector)
                assert dict(zip(v.indices, v.values, strict=True)) == pytest.approx(
                    dict(zip(w.indices, w.values, strict=True)), rel=1e-6
                )
            else:
                assert w == pytest.approx(v, abs=1e-6)  # re-normalised for Cosine: last bits


def ranked(retriever: HybridRetriever) -> list[list[tuple[str | None, dict[str, int]]]]:
    return [[(d.id, d.metadata["_ranks"]) for d in retriever.invoke(q, k=10)] for q in QUERIES]


def test_round_trip_edge_to_qdrant_client_and_back_keeps_everything(
    tmp_path: Path, edge_source: Path, make_retriever: Any
) -> None:
    edge = {"path": edge_source}
    local = {"path": tmp_path / "local", "engine": "qdrant-client"}
    back = {"path": tmp_path / "back", "engine": "edge"}

    there = copy_collection("notes", source=edge, target=local, show_progress=False)
    assert (there.source_points, there.target_points, there.copied_points) == (60, 60, 60)
    assert not there.resumed and there.queries_checked == 60
    assert there.disagreements == {"dense": 0, "sparse": 0, "bm25": 0}
    again = copy_collection(
        "notes", source=local, target=back, target_collection="notes-back", show_progress=False
    )
    assert again.target_points == 60 and set(again.disagreements.values()) == {0}

    original = points(edge, "notes")
    assert_same_points(original, points(local, "notes"))
    assert_same_points(original, points(back, "notes-back"))
    # The whole metadata came across: the model record and the other key.
    source_metadata = metadata(edge, "notes")
    assert RECORD_KEY in source_metadata and LEGACY_KEY in source_metadata
    assert metadata(local, "notes") == source_metadata
    assert metadata(back, "notes-back") == source_metadata
    # The BM25 vector keeps the IDF modifier in both engines.
    for where, name in ((local, "notes"), (back, "notes-back")):
        storage = open_storage(**where, collection=name)
        layout = storage.get_layout(name)
        storage.close()
        assert layout is not None and layout.sparse["bm25"].idf_modifier
        assert not layout.sparse["sparse"].idf_modifier

    # Opened as users open it, with the same models: the record passes, the rankings agree.
    first = make_retriever(collection_name="notes", bm25_encoder=True, **edge)
    expected = ranked(first)
    first.close()
    for where, name in ((local, "notes"), (back, "notes-back")):
        copy = make_retriever(collection_name=name, bm25_encoder=True, **where)
        assert ranked(copy) == expected
        copy.close()


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from hybrid_retriever import move
    from hybrid_retriever.storage.connect import open_storage

    source, target, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    move.CHECKPOINT_SECONDS = 0.0  # a checkpoint after every batch
    storage = open_storage(path=target, engine="qdrant-client", collection="notes")
    upsert, calls = storage.upsert, []

    def upsert_then_die(collection, batch):
        upsert(collection, batch)
        calls.append(1)
        if len(calls) == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    storage.upsert = upsert_then_die
    move.copy_collection(
        "notes", source={"path": source}, target=storage, batch_size=8, show_progress=False
    )
    """
)


def test_a_killed_copy_is_refused_on_open_then_resumes_without_losses_or_duplicates(
    tmp_path: Path, edge_source: Path, make_retriever: Any
) -> None:
    local = {"path": tmp_path / "local", "engine": "qdrant-client"}
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(edge_source), str(local["path"]), "3"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    half = points(local, "notes")
    assert 8 <= len(half) < len(DOCUMENTS)
    marker = metadata(local, "notes")[COPY_KEY]
    assert marker["collection"] == "notes" and marker["resume_from"] in half
    assert RECORD_KEY not in metadata(local, "notes")  # the record goes last

    opened = make_retriever(collection_name="notes", bm25_encoder=True, **local)
    with pytest.raises(IncompleteCopyError, match="unfinished copy"):
        opened.invoke("bread")
    opened.close()  # embedded qdrant-client: one client per folder

    report = copy_collection(
        "notes", source={"path": edge_source}, target=local, batch_size=8, show_progress=False
    )
    assert report.resumed
    assert 0 < report.copied_points < len(DOCUMENTS)  # continued at the checkpoint
    assert report.target_points == len(DOCUMENTS)
    assert_same_points(points({"path": edge_source}, "notes"), points(local, "notes"))
    assert COPY_KEY not in metadata(local, "notes")
    assert make_retriever(collection_name="notes", bm25_encoder=True, **local).invoke("bread")


def test_a_target_with_other_data_is_refused_unless_overwrite(
    tmp_path: Path, edge_source: Path, make_retriever: Any
) -> None:
    other = tmp_path / "other"
    occupant = make_retriever(collection_name="notes", path=other, bm25_encoder=True)
    occupant.add_documents(DOCUMENTS[:5], show_progress=False)
    occupant.close()
    with pytest.raises(TargetNotEmptyError, match=r"5 points.*overwrite=True"):
        copy_collection("notes", source={"path": edge_source}, target={"path": other})
    assert len(points({"path": other}, "notes")) == 5  # nothing written

    report = copy_collection(
        "notes",
        source={"path": edge_source},
        target={"path": other},
        overwrite=True,
        show_progress=False,
    )
    assert report.target_points == len(DOCUMENTS)
    assert points({"path": other}, "notes").keys() == points({"path": edge_source}, "notes").keys()
    # A finished copy run again is "other data" too: refused, never doubled.
    with pytest.raises(TargetNotEmptyError):
        copy_collection("notes", source={"path": edge_source}, target={"path": other})


def test_errors_have_their_types(
    tmp_path: Path, edge_source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge = {"path": edge_source}
    local = {"path": tmp_path / "local", "engine": "qdrant-client"}
    with pytest.raises(CollectionNotFoundError, match="missing"):
        copy_collection("missing", source=edge, target=local)
    with pytest.raises(InvalidParameterError, match="same collection"):
        copy_collection("notes", source=edge, target={"path": str(edge_source) + "/."})
    with pytest.raises(InvalidParameterError, match="batch_size"):
        copy_collection("notes", source=edge, target=local, batch_size=0)

    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path / "foreign"))
    client.create_collection("foreign", vectors_config=models.VectorParams(size=4, distance="Dot"))
    client.close()
    with pytest.raises(CollectionMismatchError, match="this package's layout"):
        copy_collection("foreign", source={"path": tmp_path / "foreign"}, target=local)

    # A source written during the copy: the count check fails and the target stays unfinished.
    from hybrid_retriever import move

    copy_points = move.copy_points

    def copy_then_source_grows(source: Any, *args: Any, **kwargs: Any) -> int:
        written = copy_points(source, *args, **kwargs)
        extra = next(iter(source.scroll_points("notes", batch_size=1)))[0]
        source.upsert("notes", [StoredPoint(str(uuid.UUID(int=1)), extra.vectors, {})])
        return written

    monkeypatch.setattr(move, "copy_points", copy_then_source_grows)
    with pytest.raises(CopyVerificationError, match="holds 60 points, the source 61"):
        copy_collection("notes", source=edge, target=local, show_progress=False)
    assert COPY_KEY in metadata(local, "notes")


def test_same_top_allows_ties_and_float_noise_only() -> None:
    def hits(*pairs: tuple[str, float]) -> list[ScoredPoint]:
        return [ScoredPoint(id=i, score=s, payload={}) for i, s in pairs]

    a = hits(("x", 0.9), ("y", 0.5), ("z", 0.5), ("w", 0.1))
    assert same_top(a, hits(("x", 0.9000001), ("z", 0.5), ("y", 0.5), ("w", 0.1)))
    assert same_top(a, hits(("x", 0.9), ("y", 0.5), ("z", 0.5), ("v", 0.1)))  # tie for last
    assert not same_top(a, hits(("y", 0.9), ("x", 0.5), ("z", 0.5), ("w", 0.1)))
    assert not same_top(a, hits(("x", 0.9), ("y", 0.5), ("z", 0.4), ("w", 0.1)))
    assert not same_top(a, a[:3])


def test_cli_copy_and_refusal(tmp_path: Path, edge_source: Path) -> None:
    report = tmp_path / "copy.json"
    ran = ok(
        run(
            "copy", "notes", "--path", edge_source, "--to-path", tmp_path / "local",
            "--to-engine", "qdrant-client", "--verify-queries", "5", "--json", report,
            "--no-progress", cwd=tmp_path,
        )
    )  # fmt: skip
    assert "into 'notes': 60 points" in ran.stdout
    written = json.loads(report.read_text())
    assert written["target_points"] == 60 and written["queries_checked"] == 5
    line = one_line_error(
        run("copy", "notes", "--path", edge_source, "--to-path", tmp_path / "local",
            "--to-engine", "qdrant-client", cwd=tmp_path)
    )  # fmt: skip
    assert "--overwrite" in line and "--to-collection" in line
