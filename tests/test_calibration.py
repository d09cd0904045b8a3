"""Label-free branch weights from known-item search (calibration.py), on real models and Qdrant:
how they are measured, stored with the collection, and used by searches that set no weights."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document

from hybrid_retriever import (
    CollectionNotFoundError,
    FusionMethod,
    InvalidParameterError,
    SentenceTransformerEncoder,
)
from hybrid_retriever.calibration import (
    MIN_QUERIES,
    STORED_KEY,
    Calibration,
    StoredCalibration,
    calibrate,
    candidate_sentences,
    collection_queries,
    known_item_queries,
    stored_calibration,
    weights_from_mrr,
)
from hybrid_retriever.cli import main
from hybrid_retriever.tuning import FusionConfig

SENTENCES = [
    "Yeast ferments the sugars in the dough overnight.",  # 8 words
    "It releases carbon dioxide gas into the dough.",  # 8 words
]


def test_weights_are_the_squared_mrr_normalised() -> None:
    assert weights_from_mrr({"dense": 0.8, "sparse": 0.4}) == pytest.approx(
        {"dense": 0.64 / 0.8, "sparse": 0.16 / 0.8}
    )
    assert weights_from_mrr({"dense": 0.5, "sparse": 0.0}) == {"dense": 1.0, "sparse": 0.0}
    assert weights_from_mrr({"dense": 0.0, "sparse": 0.0}) == {"dense": 0.5, "sparse": 0.5}


def test_candidate_sentences_leave_out_a_first_sentence_that_has_followers() -> None:
    assert candidate_sentences(" ".join(SENTENCES)) == SENTENCES[1:]
    assert candidate_sentences(SENTENCES[0]) == SENTENCES[:1]  # the only one stays
    # "Bread." is too short to be a query, so the first usable sentence is not the first.
    assert candidate_sentences("Bread. " + " ".join(SENTENCES) + " Short one.") == SENTENCES
    assert candidate_sentences("Too short. " + "word " * 31) == []


def test_known_item_queries_sample_documents_with_a_usable_sentence() -> None:
    documents = [Document(page_content=f"{SENTENCES[0]} number {i}", id=f"d{i}") for i in range(50)]
    documents += [Document(page_content="Too short.", id="short")]
    documents += [Document(page_content=SENTENCES[1], metadata={"doc_id": "beir-7"})]
    everything = known_item_queries(documents, sample=100)
    assert len(everything) == 51  # "Too short." has no sentence to ask with
    by_target = {q.target_id: q for q in everything}
    assert by_target["beir-7"].text == SENTENCES[1]  # hits carry the source's doc_id
    some = known_item_queries(documents, sample=10, seed=3)
    assert len(some) == 10
    assert len({q.point_id for q in some}) == 10
    assert some == known_item_queries(documents, sample=10, seed=3)
    assert some != known_item_queries(documents, sample=10, seed=4)
    with pytest.raises(InvalidParameterError, match="sample must be an integer >= 1"):
        known_item_queries(documents, sample=0)


def test_known_item_target_ids_are_the_ids_search_hits_carry(
    make_retriever: Any, documents: list[Document]
) -> None:
    retriever = make_retriever()
    retriever.add_documents(documents, show_progress=False)
    stored, _ = retriever.storage.scroll(retriever.collection_name, offset=None, limit=1000)
    queries = known_item_queries(documents, sample=len(documents))
    assert {q.point_id for q in queries} == {p.id for p in stored}
    query = queries[0]
    top = retriever.invoke(query.text, k=1)[0]
    assert top.metadata["_id"] == query.target_id  # a whole-document query finds itself


def test_calibrate_gives_a_weakened_branch_less_weight(
    make_retriever: Any, documents: list[Document], dense_encoder: SentenceTransformerEncoder
) -> None:
    # Every document opens with the same kind of heading; its own sentence follows.
    headed = [
        Document(page_content=f"Notes from the archive, entry {i}. {d.page_content}", id=str(i))
        for i, d in enumerate(documents)
    ]
    full = make_retriever(collection_name="full")
    full.add_documents(headed, show_progress=False)
    balanced = calibrate(full)
    assert balanced.queries == len(headed)
    assert min(balanced.known_item_mrr.values()) > 0.8
    assert sum(balanced.weights.values()) == pytest.approx(1.0)

    # A dense model that reads only the first 8 tokens sees nothing but the heading
    # (the fusion study's dense-trunc setting): indexed and searched that way.
    model = dense_encoder.model
    before, model.max_seq_length = model.max_seq_length, 8
    try:
        truncated = make_retriever(collection_name="truncated")
        truncated.add_documents(headed, show_progress=False)
        weakened = calibrate(truncated)
    finally:
        model.max_seq_length = before
    assert weakened.known_item_mrr["dense"] < 0.5
    assert weakened.known_item_mrr["sparse"] == pytest.approx(balanced.known_item_mrr["sparse"])
    assert weakened.weights["sparse"] > 0.8 > balanced.weights["sparse"]
    config = weakened.config(provenance={"note": "test"})
    assert config.method is FusionMethod.ADAPTIVE
    assert config.weights == weakened.weights
    assert config.provenance["note"] == "test"
    assert config.provenance["known_item_mrr@10"] == weakened.known_item_mrr


def test_the_collection_yields_the_sample_drawn_from_the_documents(
    make_retriever: Any, engine: str, documents: list[Document]
) -> None:
    """One scroll from the seed's starting id, wrapping round, reads the documents that
    come first in sample order: the same queries as from the documents themselves."""
    retriever = make_retriever(engine=engine, auto_calibrate=False)
    retriever.add_documents(documents, show_progress=False)
    for seed in range(4):  # different starting points, so the scroll wraps at different places
        for sample in (3, 10, len(documents)):
            expected = known_item_queries(documents, sample=sample, seed=seed)
            found = collection_queries(retriever.storage, "documents", sample=sample, seed=seed)
            assert found == expected
            assert len(found) == min(sample, len(documents))
    assert collection_queries(retriever.storage, "documents", sample=5, seed=1) != (
        collection_queries(retriever.storage, "documents", sample=5, seed=2)
    )


def test_indexing_stores_a_calibration_that_searches_use(
    make_retriever: Any, engine: str, documents: list[Document]
) -> None:
    retriever = make_retriever(engine=engine)
    retriever.add_documents(documents, show_progress=False)
    stored = stored_calibration(retriever)
    assert stored is not None
    assert stored.points == len(documents)
    assert (stored.dense_encoder, stored.sparse_encoder) == ("all-MiniLM-L6-v2", "splade-tiny")
    assert stored.calibration == calibrate(retriever)  # measured again: the same
    assert retriever.calibration == stored.calibration
    # Both branches find every demo document (MRR 1), so the measured weights are equal;
    # store unequal ones for these encoders, as a lopsided corpus would get.
    assert stored.calibration is not None
    lopsided = Calibration(
        {"dense": 0.9, "sparse": 0.3}, weights_from_mrr({"dense": 0.9, "sparse": 0.3}), 40
    )
    record = dataclasses.replace(stored, calibration=lopsided)
    retriever.storage.update_metadata("documents", {STORED_KEY: record.to_json()})
    searcher = make_retriever(storage=retriever.storage)
    assert searcher.calibration == lopsided

    query = "why does bread dough rise"
    default = searcher.invoke(query, k=8)
    explicit = searcher.invoke(query, k=8, weights=lopsided.weights)
    equal = searcher.invoke(query, k=8, weights={"dense": 1.0, "sparse": 1.0})
    assert _fused(default) == _fused(explicit)
    assert [d.metadata["_score"] for d in default] != [d.metadata["_score"] for d in equal]
    # Other methods keep their own meaning: RRF without weights is the paper's, unweighted.
    assert _fused(searcher.invoke(query, k=8, fusion="rrf")) == _fused(
        searcher.invoke(query, k=8, fusion="rrf", weights={"dense": 1.0, "sparse": 1.0})
    )


async def test_async_indexing_calibrates_and_async_search_uses_it(
    make_retriever: Any, documents: list[Document]
) -> None:
    retriever = make_retriever()
    await retriever.aadd_documents(documents, show_progress=False)
    stored = stored_calibration(retriever)
    assert stored is not None and stored.calibration is not None
    fresh = make_retriever(storage=retriever.storage)
    found = await fresh.ainvoke("planets around other stars", k=5)
    expected = retriever.invoke(
        "planets around other stars", k=5, weights=stored.calibration.weights
    )
    assert _fused(found) == _fused(expected)


def test_calibration_persists_with_an_edge_folder(
    make_retriever: Any, documents: list[Document], tmp_path: Path
) -> None:
    first = make_retriever(path=str(tmp_path / "qdrant"))
    first.add_documents(documents, show_progress=False)
    measured = first.calibration
    first.close()
    assert (tmp_path / "qdrant" / "documents" / "hybrid_retriever.json").is_file()
    reopened = make_retriever(path=str(tmp_path / "qdrant"))
    assert measured is not None
    assert reopened.calibration == measured


def test_auto_calibrate_false_neither_measures_nor_uses(
    make_retriever: Any, documents: list[Document]
) -> None:
    calibrated = make_retriever()
    calibrated.add_documents(documents, show_progress=False)
    assert calibrated.calibration is not None
    plain = make_retriever(storage=calibrated.storage, auto_calibrate=False)
    assert plain.calibration is None
    query = "combining keyword and vector search results"
    assert _fused(plain.invoke(query, k=6)) == _fused(
        calibrated.invoke(query, k=6, weights={"dense": 1.0, "sparse": 1.0})
    )
    unmeasured = make_retriever(collection_name="unmeasured", auto_calibrate=False)
    unmeasured.add_documents(documents, show_progress=False)
    assert stored_calibration(unmeasured) is None


def test_a_small_collection_says_why_and_is_measured_once_it_has_doubled(
    make_retriever: Any, documents: list[Document]
) -> None:
    assert len(documents) >= 2 * (MIN_QUERIES - 4)
    small = documents[: MIN_QUERIES - 4]
    retriever = make_retriever()
    retriever.add_documents(small, show_progress=False)
    stored = stored_calibration(retriever)
    assert stored is not None and stored.calibration is None
    assert f"at least {MIN_QUERIES} documents" in (stored.skipped or "")
    assert retriever.calibration is None
    with pytest.raises(InvalidParameterError, match=rf"has {len(small)} \(looking at up to"):
        calibrate(retriever)

    retriever.add_documents(documents[len(small) : len(small) + 3], show_progress=False)
    after = stored_calibration(retriever)
    assert after is not None and after.points == len(small)  # not due: grown by less than 2x
    retriever.add_documents(documents, show_progress=False)
    grown = stored_calibration(retriever)
    assert grown is not None and grown.points == len(documents)
    assert grown.calibration is not None and retriever.calibration == grown.calibration


def test_when_a_calibration_is_due() -> None:
    class Named:
        def __init__(self, dense: str, sparse: str) -> None:
            self.dense_encoder = type("E", (), {"name": dense})()
            self.sparse_encoder = type("E", (), {"name": sparse})()

    stored = StoredCalibration(
        points=100, dense_encoder="d", sparse_encoder="s", calibration=None, skipped="few"
    )
    same: Any = Named("d", "s")
    assert not stored.is_due(same, points=100)
    assert not stored.is_due(same, points=199)
    assert stored.is_due(same, points=200)
    assert not stored.is_due(same, points=51)
    assert stored.is_due(same, points=50)
    assert stored.is_due(Named("other", "s"), points=100)
    assert stored.is_due(Named("d", "other"), points=100)
    assert StoredCalibration.from_json(stored.to_json()) == stored
    for junk in (None, {}, {"points": "x"}, [1], {"calibration": {"weights": 1}}):
        assert StoredCalibration.from_json(junk) is None


def test_a_calibration_for_other_encoders_is_not_used(
    make_retriever: Any, documents: list[Document]
) -> None:
    retriever = make_retriever()
    retriever.add_documents(documents, show_progress=False)
    stored = stored_calibration(retriever)
    assert stored is not None and stored.calibration is not None
    foreign = StoredCalibration(
        points=stored.points,
        dense_encoder="another-model",
        sparse_encoder=stored.sparse_encoder,
        calibration=Calibration(
            stored.calibration.known_item_mrr, {"dense": 1.0, "sparse": 0.0}, 99
        ),
    )
    retriever.storage.update_metadata("documents", {STORED_KEY: foreign.to_json()})
    assert make_retriever(storage=retriever.storage).calibration is None
    # The next write sees encoders that differ, and measures again.
    retriever.add_documents(documents[:1], show_progress=False)
    assert stored_calibration(retriever) == stored


def test_storage_metadata_merges_and_keeps_points(make_retriever: Any, engine: str) -> None:
    retriever = make_retriever(engine=engine, auto_calibrate=False)
    retriever.add_texts(["one document"], show_progress=False)
    storage = retriever.storage
    assert storage.get_metadata("documents") == {}
    storage.update_metadata("documents", {"a": 1, "b": {"c": [1, 2]}})
    storage.update_metadata("documents", {"a": 2})
    assert storage.get_metadata("documents") == {"a": 2, "b": {"c": [1, 2]}}
    assert retriever.count() == 1
    with pytest.raises(CollectionNotFoundError):
        storage.get_metadata("missing")


def test_cli_calibrate_stores_the_weights_and_saves_a_config_that_search_loads(
    tmp_path: Path, documents: list[Document], capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": f"doc-{i}", "text": d.page_content, "metadata": d.metadata}) + "\n"
            for i, d in enumerate(documents)
        )
    )
    where = ["--collection", "docs", "--path", str(tmp_path / "qdrant")]
    assert main(["index", str(source), *where, "--no-progress"]) == 0
    stored_file = tmp_path / "qdrant" / "docs" / "hybrid_retriever.json"
    indexed = json.loads(stored_file.read_text())[STORED_KEY]
    assert indexed["calibration"]["queries"] == len(documents)
    assert "Calibration: searches weight the branches dense 0.50" in capsys.readouterr().out
    out = tmp_path / "fusion.json"
    sample = MIN_QUERIES + 1
    assert main(["calibrate", *where, "--sample", str(sample), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{sample} known-item queries from {len(documents)} documents" in printed
    assert json.loads(stored_file.read_text())[STORED_KEY]["calibration"]["queries"] == sample
    config = FusionConfig.load(out)
    assert config.method is FusionMethod.ADAPTIVE
    assert config.weights is not None
    assert config.provenance["command"].startswith("hybrid-retriever calibrate")
    search = ["search", "bread", *where, "--fusion-config", str(out), "--json"]
    assert main(search) == 0
    assert json.loads(capsys.readouterr().out)["fusion"] == "adaptive"
    assert main(["calibrate", "--collection", "nope", *where[2:]]) == 1
    assert "does not exist" in capsys.readouterr().err


def _fused(documents: list[Document]) -> list[tuple[str, float]]:
    return [(d.metadata["_id"], round(d.metadata["_score"], 6)) for d in documents]
