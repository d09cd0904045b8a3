"""The pieces ``eval`` and ``tune`` share: branch lists, hit ids, ranx scoring, the runs
for a retriever's branches. Hand-computed values; the search itself is checked against
``invoke`` in ``test_one_search.py``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from hybrid_retriever.branch_lists import (
    best_per_id,
    hit_id,
    retriever_branches,
    search_branches,
    stored_hit_id,
)
from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.evaluation import DEFAULT_RUN, DEFAULT_RUNS, RUN_NAMES, default_runs
from hybrid_retriever.fusion.rrf import BranchHit
from hybrid_retriever.scoring import score_queries

THREE = ("dense", "sparse", "bm25")


def test_best_per_id_keeps_each_ids_first_hit_in_order() -> None:
    hits = [BranchHit("a", 3.0), BranchHit("b", 2.5), BranchHit("a", 2.0), BranchHit("c", 1.0)]
    assert best_per_id(hits) == [BranchHit("a", 3.0), BranchHit("b", 2.5), BranchHit("c", 1.0)]
    assert best_per_id([]) == []


def test_hit_ids_prefer_the_source_document_then_the_doc_id_then_the_id() -> None:
    assert hit_id("a#3", {"doc_id": "a#3", "source_id": "a"}) == "a"
    assert hit_id("p", {"doc_id": "d"}) == "d"
    assert hit_id("p", {}) == "p"
    # A stored point: the metadata sits under the payload's "metadata" key.
    assert stored_hit_id("p", {"metadata": {"source_id": "doc", "doc_id": "doc#2"}}) == "doc"


def test_score_queries_hand_computed() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 2, "c": 1}, "unrun": {"a": 1}}
    ranking = {
        "q1": {"x": -1.0, "a": -2.0},  # relevant at rank 2
        "q2": {},  # retrieved nothing
    }
    scores = score_queries(qrels, ranking, ["ndcg@10", "mrr@10", "recall@100"])
    assert set(scores) == {"q1", "q2"}  # a judged query that did not run is left out
    # q1: DCG = 1 / log2(3); IDCG = 1: nDCG = 0.6309298; MRR = 1/2; recall 1/1.
    assert scores["q1"] == pytest.approx(
        {"ndcg@10": 1 / math.log2(3), "mrr@10": 0.5, "recall@100": 1.0}
    )
    assert scores["q2"] == {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@100": 0.0}


def test_runs_for_two_branches_keep_todays_rows() -> None:
    assert [r.name for r in DEFAULT_RUNS] == [
        "dense",
        "sparse",
        DEFAULT_RUN,
        "rrf",
        "dbsf",
        "convex-0.5",
        "adaptive",
    ]
    assert default_runs(("sparse", "dense")) == DEFAULT_RUNS  # order-free


def test_runs_for_three_branches_add_bm25_and_fuse_all_three() -> None:
    runs = {r.name: r.options for r in default_runs(THREE)}
    assert list(runs) == list(RUN_NAMES)
    assert list(runs)[:4] == ["dense", "sparse", "bm25", DEFAULT_RUN]
    assert runs["bm25"] == {"branches": ["bm25"]}
    assert runs[DEFAULT_RUN] == {}  # exactly what invoke does with no options
    assert runs["convex-0.5"] == {
        "branches": list(THREE),
        "fusion": "convex",
        "weights": {"dense": 0.5, "sparse": 0.5, "bm25": 0.5},
    }
    assert runs["adaptive"]["weights"] == dict.fromkeys(THREE, 1.0)


def test_every_run_but_the_default_names_its_branches() -> None:
    # A weight left out counts as 1 and an unnamed branch is searched: a two-branch row
    # must not take in BM25 on a retriever that has it.
    for branches in (("dense", "sparse"), THREE):
        for run in default_runs(branches):
            if run.name != DEFAULT_RUN:
                assert "branches" in run.options, run.name
                weights = run.options.get("weights")
                assert weights is None or set(weights) == set(run.options["branches"])


def test_runs_refuse_branches_they_cannot_fuse() -> None:
    with pytest.raises(InvalidParameterError, match="branches must be"):
        default_runs(("dense", "bm25"))
    with pytest.raises(InvalidParameterError, match="branches must be"):
        default_runs(("dense", "sparse", "colbert"))


def test_retriever_branches_follow_the_bm25_encoder(
    make_retriever: Callable[..., Any],
) -> None:
    with_bm25 = make_retriever(location=":memory:", collection_name="b", bm25_encoder=True)
    without = make_retriever(location=":memory:", collection_name="n", bm25_encoder=False)
    assert retriever_branches(with_bm25) == THREE
    assert retriever_branches(without) == ("dense", "sparse")
    # Limiting a default search to some branches does not limit what can be searched.
    limited = make_retriever(
        location=":memory:", collection_name="l", bm25_encoder=True, branches=["dense"]
    )
    assert retriever_branches(limited) == THREE


def test_search_branches_refuses_a_collection_that_does_not_exist(
    make_retriever: Callable[..., Any],
) -> None:
    retriever = make_retriever(location=":memory:", collection_name="absent")
    with pytest.raises(InvalidParameterError, match="does not exist; index the dataset"):
        search_branches(retriever, {"q": "text"})
