"""Scoring many option sets from one search per query gives what ``invoke`` gives.

``eval`` encodes each query once, searches each branch once as deep as the deepest run
needs, and computes every run with ``HybridRetriever.fuse_rankings``. That is only
worth having if each run's ranking is the one ``invoke`` returns with the same options;
checked here on both embedded engines with the real models.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ENGINES
from langchain_core.documents import Document

from hybrid_retriever import HybridRetriever, SentenceTransformerEncoder, SpladeEncoder
from hybrid_retriever.branch_lists import hit_id, search_branches
from hybrid_retriever.evaluation import (
    DEFAULT_RUNS,
    default_runs,
    run_from_one_search,
    run_retriever,
)

QUERIES = {
    "q1": "why does bread dough rise",
    "q2": "how do astronomers find planets around other stars",
    "q3": "insulin resistance and exercise",
    "q4": "how much sleep do adults need",
}


@pytest.fixture(scope="module", params=ENGINES)
def two_branch_retriever(
    request: pytest.FixtureRequest,
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
    documents: list[Document],
) -> Iterator[HybridRetriever]:
    """The demo collection written without BM25 (``bm25_encoder=False``), as collections
    from before BM25 are: one search must rank them as ``invoke`` does too."""
    retriever = HybridRetriever.from_documents(
        documents,
        collection_name="demo",
        engine=request.param,
        dense_encoder=dense_encoder,
        sparse_encoder=sparse_encoder,
        bm25_encoder=False,
        show_progress=False,
    )
    retriever.invoke("settle")
    retriever.invoke("settle again")
    yield retriever
    retriever.close()


OPTION_SETS: list[dict[str, Any]] = [
    {},
    {"k": 3},
    {"k": 5, "prefetch_k": 6},
    {"fusion": "rrf", "rrf_k": 5},
    {"fusion": "dbsf", "k": 7},
    {"fusion": "convex", "weights": {"dense": 0.7, "sparse": 0.3}},
    {"weights": {"dense": 0.0, "sparse": 1.0}},
    {"weights": {"dense": 1.0, "sparse": 0.0}, "k": 2},
    {"fusion": "adaptive", "weights": {"dense": 1.0, "sparse": 2.0}},
]


def test_fuse_rankings_ranks_as_invoke_does(two_branch_retriever: HybridRetriever) -> None:
    depth = max(two_branch_retriever.search_depth(**options) for options in OPTION_SETS)
    lists = search_branches(two_branch_retriever, QUERIES, depth=depth)
    for options in OPTION_SETS:
        for query_id, text in QUERIES.items():
            invoked = [
                hit_id(str(d.id), d.metadata) for d in two_branch_retriever.invoke(text, **options)
            ]
            ranked = two_branch_retriever.fuse_rankings(text, lists[query_id], **options)
            fused = [hit.id for hit in ranked]
            assert fused == invoked, (options, query_id)


def test_search_depth_is_the_prefetch_the_options_resolve_to(
    two_branch_retriever: HybridRetriever,
) -> None:
    assert two_branch_retriever.search_depth() == 100
    assert two_branch_retriever.search_depth(k=150) == 150
    assert two_branch_retriever.search_depth(k=3, prefetch_k=7) == 7


@pytest.mark.parametrize("ignore_identical_ids", [False, True])
def test_one_search_gives_every_run_the_ranking_of_its_own_searches(
    two_branch_retriever: HybridRetriever, ignore_identical_ids: bool
) -> None:
    # A query id that is also a document id, as in ArguAna, exercises ignore_identical_ids.
    first = two_branch_retriever.invoke(QUERIES["q1"], k=1)[0]
    queries = {**QUERIES, hit_id(str(first.id), first.metadata): QUERIES["q1"]}
    one = run_from_one_search(
        two_branch_retriever, queries, DEFAULT_RUNS, k=10, ignore_identical_ids=ignore_identical_ids
    )
    for spec in DEFAULT_RUNS:
        each = run_retriever(
            two_branch_retriever,
            queries,
            ignore_identical_ids=ignore_identical_ids,
            k=10,
            **spec.options,
        )
        assert one[spec.name].ranking == each.ranking, spec.name


THREE_BRANCH_OPTION_SETS: list[dict[str, Any]] = [
    {},
    {"k": 5, "prefetch_k": 6},
    {"branches": ["bm25"]},
    {"branches": ["dense", "bm25"], "fusion": "rrf"},
    {"fusion": "convex", "weights": {"dense": 0.5, "sparse": 0.2, "bm25": 0.3}},
    {"fusion": "dbsf", "weights": {"dense": 1.0, "sparse": 0.0, "bm25": 2.0}},
    {"fusion": "adaptive"},
]


def test_three_branch_lists_fuse_as_invoke_does(demo_retriever: HybridRetriever) -> None:
    depth = max(demo_retriever.search_depth(**o) for o in THREE_BRANCH_OPTION_SETS)
    lists = search_branches(demo_retriever, QUERIES, depth=depth)
    assert all(set(per_query) == {"dense", "sparse", "bm25"} for per_query in lists.values())
    assert any(per_query["bm25"] for per_query in lists.values())
    for options in THREE_BRANCH_OPTION_SETS:
        for query_id, text in QUERIES.items():
            invoked = [
                hit_id(str(d.id), d.metadata) for d in demo_retriever.invoke(text, **options)
            ]
            fused = [
                hit.id for hit in demo_retriever.fuse_rankings(text, lists[query_id], **options)
            ]
            assert fused == invoked, (options, query_id)


def test_one_search_gives_every_three_branch_run_its_own_ranking(
    demo_retriever: HybridRetriever,
) -> None:
    runs = default_runs(("dense", "sparse", "bm25"))
    # The two-branch runs mean the same on a retriever with BM25: it stays out of them.
    for spec in (*runs, *DEFAULT_RUNS):
        one = run_from_one_search(demo_retriever, QUERIES, [spec], k=10)
        each = run_retriever(demo_retriever, QUERIES, k=10, **spec.options)
        assert one[spec.name].ranking == each.ranking, spec.name
    two_branch_rrf = next(spec for spec in DEFAULT_RUNS if spec.name == "rrf")
    for text in QUERIES.values():
        for document in demo_retriever.invoke(text, k=10, **two_branch_rrf.options):
            assert "bm25" not in document.metadata["_ranks"]
