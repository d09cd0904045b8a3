"""Label-free branch weights from known-item search (calibration.py), on real models and Qdrant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document

from hybrid_retriever import FusionMethod, InvalidParameterError, SentenceTransformerEncoder
from hybrid_retriever.calibration import (
    calibrate,
    candidate_sentences,
    known_item_queries,
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
    stored = retriever.add_documents(documents, show_progress=False)
    queries = known_item_queries(documents, sample=len(documents))
    assert {q.point_id for q in queries} == set(stored)
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
    balanced = calibrate(full, headed)
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
        weakened = calibrate(truncated, headed)
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


def test_calibrate_refuses_documents_that_are_not_indexed(
    make_retriever: Any, documents: list[Document]
) -> None:
    retriever = make_retriever()
    retriever.add_documents(documents[:10], show_progress=False)
    with pytest.raises(InvalidParameterError, match="10 are in collection"):
        calibrate(retriever, documents)


def test_cli_calibrate_saves_a_config_that_search_loads(
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
    out = tmp_path / "fusion.json"
    assert main(["calibrate", str(source), *where, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{len(documents)} known-item queries" in printed
    config = FusionConfig.load(out)
    assert config.method is FusionMethod.ADAPTIVE
    assert config.weights is not None
    assert config.provenance["command"].startswith("hybrid-retriever calibrate")
    search = ["search", "bread", *where, "--fusion-config", str(out), "--json"]
    assert main(search) == 0
    assert json.loads(capsys.readouterr().out)["fusion"] == "adaptive"
    assert main(["calibrate", str(source), "--collection", "nope", *where[2:]]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_eval_fills_in_the_calibrated_run_from_the_corpus(
    make_retriever: Any, documents: list[Document], tmp_path: Path
) -> None:
    from hybrid_retriever.cli.evaluate import calibrated_runs
    from hybrid_retriever.evaluation import CALIBRATED_RUN, DEFAULT_RUNS, load_beir

    folder = tmp_path / "demo"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"_id": f"d{i}", "title": "", "text": d.page_content}) + "\n"
            for i, d in enumerate(documents)
        )
    )
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "bread"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\n")
    dataset = load_beir(folder)
    retriever = make_retriever()
    retriever.add_documents(dataset.corpus(), show_progress=False)
    runs, found = calibrated_runs(retriever, dataset, [DEFAULT_RUNS[0], CALIBRATED_RUN])
    assert runs[0] is DEFAULT_RUNS[0]
    assert runs[1].options["fusion"] is FusionMethod.ADAPTIVE
    assert found is not None
    assert runs[1].options["weights"] == found["weights"]
    assert found["queries"] == len(documents)
