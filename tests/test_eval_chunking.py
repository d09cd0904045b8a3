"""``eval --chunking``: long documents indexed as chunks, hits scored as their documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hybrid_retriever.cli import main
from hybrid_retriever.evaluation import RunResult, run_retriever
from hybrid_retriever.tuning import hit_id

FILLER = " ".join(
    f"Paragraph {i}: the bakery opens at dawn, flour is weighed, dough is kneaded and left "
    "to rise before the loaves go into the oven."
    for i in range(60)
)
FACT = "The lighthouse keeper's cat, Biscuit, rang the fog bell every evening at nine."
CORPUS = {
    "long": f"{FILLER} {FACT}",  # the fact lies past the first 256 tokens
    "planets": "Planets orbit stars along elliptical paths.",
    "insulin": "Insulin resistance develops with inactivity.",
    "sleep": "Adults need seven to nine hours of sleep.",
}
QUERIES = {"q1": "which cat rang the lighthouse fog bell", "q2": "hours of sleep adults need"}
QRELS = {"q1": "long", "q2": "sleep"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("long") / "long"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in CORPUS.items())
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    )
    rows = "".join(f"{q}\t{d}\t1\n" for q, d in QRELS.items())
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


def evaluate(dataset: Path, out: Path, *options: str) -> dict[str, Any]:
    argv = [str(dataset), "--memory", "--no-progress", "--latency-queries", "0", "--rankings"]
    assert main(["eval", *argv, "--json", str(out), *options]) == 0
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def test_chunked_eval_finds_the_end_of_a_long_document(dataset: Path, tmp_path: Path) -> None:
    chunked = evaluate(dataset, tmp_path / "chunked.json", "--chunking")
    with pytest.warns(UserWarning, match="cut by it"):  # the truncation warning, whole
        whole = evaluate(dataset, tmp_path / "whole.json")
    assert chunked["chunking"] is True and whole["chunking"] is False
    assert whole["passages"] == len(CORPUS) < chunked["passages"]
    for name, rankings in chunked["rankings"].items():
        for ranked in rankings.values():
            # Chunks are scored as their document, each document once, at its best chunk.
            assert len(ranked) == len(set(ranked)) and set(ranked) <= set(CORPUS), name
        assert rankings["q1"][0] == "long", name
    # Whole, the encoders read only the bakery filler: SPLADE cannot find the fact.
    assert "long" not in whole["rankings"]["sparse"]["q1"]
    assert chunked["runs"]["sparse"]["ndcg@10"] > whole["runs"]["sparse"]["ndcg@10"]


def test_hits_are_judged_by_the_document_a_chunk_comes_from() -> None:
    assert hit_id("a#3", {"doc_id": "a#3", "source_id": "a"}) == "a"
    assert hit_id("p", {"doc_id": "a"}) == "a"
    assert hit_id("p", {}) == "p"


def test_run_retriever_ranks_a_document_at_its_best_chunk() -> None:
    from langchain_core.documents import Document

    class Chunks:
        """Returns chunks of two documents, interleaved (pure logic: no model)."""

        def invoke(self, text: str, **_: Any) -> list[Document]:
            return [
                Document(id=f"{d}#{n}", page_content="", metadata={"source_id": d})
                for d, n in (("b", 2), ("a", 0), ("b", 0), ("a", 1), ("c", 0))
            ]

    result: RunResult = run_retriever(Chunks(), {"q": "x"})  # type: ignore[arg-type]
    assert result.ranked_ids("q") == ["b", "a", "c"]
