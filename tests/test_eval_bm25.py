"""``eval`` with the BM25 branch: every row there is, and each row is what ``invoke``
returns with that row's options; the default row (``convex``) with none at all.
``--no-bm25`` keeps the two-branch evaluation of old."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hybrid_retriever import HybridRetriever, SentenceTransformerEncoder, SpladeEncoder
from hybrid_retriever.branch_lists import hit_id
from hybrid_retriever.cli import main
from hybrid_retriever.cli.evaluate import select_runs
from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.evaluation import DEFAULT_RUN, DEFAULT_RUNS, RUN_NAMES, load_beir

TINY_BEIR = Path(__file__).resolve().parent.parent / "examples" / "tiny_beir"
THREE = ["dense", "sparse", "bm25"]
FLAGS = ["--no-progress", "--latency-queries", "0", "--rankings"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """eval on the tiny BEIR example, three branches (asked for, whatever the default)."""
    folder = tmp_path_factory.mktemp("eval-bm25")
    out = folder / "report.json"
    argv = ["eval", str(TINY_BEIR), "--path", str(folder / "db"), "--collection", "tiny"]
    assert main([*argv, "--bm25", *FLAGS, "--json", str(out)]) == 0
    return folder / "db", json.loads(out.read_text())


def test_eval_reports_every_branch_alone_and_every_fusion_of_all_three(
    evaluated: tuple[Path, dict[str, Any]],
) -> None:
    _, report = evaluated
    assert list(report["runs"]) == list(RUN_NAMES)
    assert RUN_NAMES[:4] == ("dense", "sparse", "bm25", DEFAULT_RUN)
    assert report["branches"] == THREE
    assert report["bm25"]["kind"] == "bm25"
    for name, run in report["runs"].items():
        assert 0.0 <= run["ndcg@10"] <= 1.0, name
    assert report["runs"]["convex-0.5"]["options"]["weights"] == dict.fromkeys(THREE, 0.5)


def test_every_row_is_what_invoke_returns(
    evaluated: tuple[Path, dict[str, Any]],
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
) -> None:
    path, report = evaluated
    queries = load_beir(TINY_BEIR, "test").queries
    retriever = HybridRetriever(
        path=path,
        collection_name="tiny",
        dense_encoder=dense_encoder,
        sparse_encoder=sparse_encoder,
        bm25_encoder=True,
    )
    try:
        for name, run in report["runs"].items():
            for query_id, text in queries.items():
                found = retriever.invoke(text, k=report["depth"], **run["options"])
                ranked = list(dict.fromkeys(hit_id(str(d.id), d.metadata) for d in found))
                assert report["rankings"][name][query_id] == ranked, (name, query_id)
        # The default row fuses all three branches: BM25 ranks are among its results.
        text = next(iter(queries.values()))
        assert any("bm25" in d.metadata["_ranks"] for d in retriever.invoke(text))
    finally:
        retriever.close()


def test_no_bm25_evaluates_the_two_branches(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    argv = ["eval", str(TINY_BEIR), "--memory", "--no-bm25", *FLAGS, "--json", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert list(report["runs"]) == [r.name for r in DEFAULT_RUNS]
    assert report["branches"] == ["dense", "sparse"]
    assert report["bm25"] is None


def test_the_bm25_run_needs_the_bm25_branch() -> None:
    assert [r.name for r in select_runs("bm25,convex")] == ["bm25", DEFAULT_RUN]
    with pytest.raises(InvalidParameterError, match="needs the BM25 branch; pass --bm25"):
        select_runs("bm25", ("dense", "sparse"))
    with pytest.raises(InvalidParameterError, match="choose among"):
        select_runs("dense,colbert")
