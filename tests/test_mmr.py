"""Maximal marginal relevance: the pure selection (hand-computed values) and
``search_type="mmr"`` on both engines with the real models, against LangChain's meanings
of ``k``, ``fetch_k`` and ``lambda_mult``."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from langchain_core.documents import Document

from hybrid_retriever import HybridRetriever, HybridVectorStore
from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.rrf import FusedHit
from hybrid_retriever.mmr import (
    cosine_matrix,
    maximal_marginal_relevance,
    mmr_order,
    rescaled_relevance,
)

# Candidate 1 is a near-duplicate of candidate 0; candidate 2 is different.
RELEVANCE = [1.0, 0.9, 0.5]
SIMILARITY = [[1.0, 0.95, 0.1], [0.95, 1.0, 0.2], [0.1, 0.2, 1.0]]


@pytest.mark.parametrize(
    ("lambda_mult", "expected"),
    [
        (1.0, [0, 1, 2]),  # relevance only
        # second pick: 1 scores .7*.9 - .3*.95 = .345, 2 scores .7*.5 - .3*.1 = .32
        (0.7, [0, 1, 2]),
        # second pick: 1 scores .5*.9 - .5*.95 = -.025, 2 scores .5*.5 - .5*.1 = .2
        (0.5, [0, 2, 1]),
        (0.0, [0, 2, 1]),  # diversity only: the near-duplicate last
    ],
)
def test_mmr_trades_relevance_for_diversity(lambda_mult: float, expected: list[int]) -> None:
    assert (
        maximal_marginal_relevance(RELEVANCE, SIMILARITY, lambda_mult=lambda_mult, limit=3)
        == expected
    )


def test_mmr_picks_at_most_limit_and_breaks_ties_by_rank() -> None:
    assert maximal_marginal_relevance(RELEVANCE, SIMILARITY, lambda_mult=0.5, limit=2) == [0, 2]
    assert maximal_marginal_relevance([], [], lambda_mult=0.5, limit=3) == []
    flat = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert maximal_marginal_relevance([0.5, 0.5, 0.5], flat, lambda_mult=0.5, limit=3) == [0, 1, 2]


def test_relevance_is_rescaled_onto_zero_to_one() -> None:
    assert rescaled_relevance([3.0, 2.0, 1.0]) == [1.0, 0.5, 0.0]
    assert rescaled_relevance([0.2, 0.2]) == [1.0, 1.0]
    assert rescaled_relevance([]) == []


def test_cosine_matrix() -> None:
    found = cosine_matrix([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    half = 1 / math.sqrt(2)
    expected = [
        [1.0, 0.0, half, 0.0],
        [0.0, 1.0, half, 0.0],
        [half, half, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
    for row, want in zip(found, expected, strict=True):
        assert row == pytest.approx(want)


def test_mmr_order_on_fused_hits_leaves_out_deleted_points() -> None:
    hits = [
        FusedHit(id=i, score=s, ranks={}, scores={})
        for i, s in [("a", 3.0), ("b", 2.0), ("c", 1.0), ("d", 0.5)]
    ]
    dense = {"a": [1.0, 0.0], "b": [0.99, 0.1], "c": [0.0, 1.0]}  # "d" is gone
    order = mmr_order(hits, dense, lambda_mult=0.0, limit=4)
    assert [h.id for h in order] == ["a", "c", "b"]
    assert [h.id for h in mmr_order(hits, dense, lambda_mult=1.0, limit=2)] == ["a", "b"]


# -- on the engines, with the real models ---------------------------------------------------

TWIN_A = "Yeast makes bread dough rise by producing carbon dioxide gas."
TWIN_B = "Yeast makes the bread dough rise by producing carbon dioxide."
OTHERS = [
    "Sourdough bread uses wild yeast and lactic acid bacteria.",
    "A hot oven sets the crust of a loaf of bread.",
    "Flour, water and salt are the basic ingredients of bread.",
]
QUERY = "how does yeast make bread dough rise"


@pytest.fixture()
def store(make_retriever: Any, engine: str) -> HybridVectorStore:
    retriever = make_retriever(engine=engine)
    retriever.add_documents(
        [Document(id=f"d{i}", page_content=t) for i, t in enumerate([TWIN_A, TWIN_B, *OTHERS])],
        show_progress=False,
    )
    return HybridVectorStore(retriever=retriever)


def ids(documents: list[Document]) -> list[str | None]:
    return [d.id for d in documents]


def test_lambda_one_is_the_similarity_order(store: HybridVectorStore) -> None:
    mmr = store.max_marginal_relevance_search(QUERY, k=4, fetch_k=5, lambda_mult=1.0)
    assert ids(mmr) == ids(store.similarity_search(QUERY, k=4))


def test_lambda_zero_picks_the_near_duplicate_last(store: HybridVectorStore) -> None:
    ranked = ids(store.similarity_search(QUERY, k=5))
    assert set(ranked[:2]) == {"d0", "d1"}  # the twins are the two best: MMR must split them
    diverse = ids(store.max_marginal_relevance_search(QUERY, k=5, fetch_k=5, lambda_mult=0.0))
    assert diverse[0] == ranked[0]
    assert diverse[-1] == ({"d0", "d1"} - {ranked[0]}).pop()
    assert sorted(diverse) == sorted(ranked)


def test_default_balance_is_langchains(store: HybridVectorStore) -> None:
    explicit = store.max_marginal_relevance_search(QUERY, k=3, fetch_k=20, lambda_mult=0.5)
    assert ids(store.max_marginal_relevance_search(QUERY, k=3)) == ids(explicit)
    retriever = store.as_retriever(search_type="mmr")
    assert (retriever.fetch_k, retriever.lambda_mult) == (None, 0.5)
    assert ids(retriever.invoke(QUERY, k=3)) == ids(explicit)


def test_async_and_retriever_agree_with_the_store(store: HybridVectorStore) -> None:
    expected = ids(store.max_marginal_relevance_search(QUERY, k=3, fetch_k=5, lambda_mult=0.2))
    found = asyncio.run(
        store.amax_marginal_relevance_search(QUERY, k=3, fetch_k=5, lambda_mult=0.2)
    )
    assert ids(found) == expected
    retriever = store.as_retriever(
        search_type="mmr", search_kwargs={"k": 3, "fetch_k": 5, "lambda_mult": 0.2}
    )
    assert isinstance(retriever, HybridRetriever)
    assert ids(retriever.invoke(QUERY)) == expected
    assert ids(asyncio.run(retriever.ainvoke(QUERY))) == expected
    assert [ids(r) for r in retriever.batch([QUERY, QUERY])] == [expected, expected]


def test_mmr_pages_are_the_selection_in_order(store: HybridVectorStore) -> None:
    whole = ids(store.max_marginal_relevance_search(QUERY, k=4, fetch_k=5, lambda_mult=0.3))
    first = ids(store.max_marginal_relevance_search(QUERY, k=2, fetch_k=5, lambda_mult=0.3))
    second = store.max_marginal_relevance_search(QUERY, k=2, fetch_k=5, lambda_mult=0.3, offset=2)
    assert first + ids(second) == whole


def test_mmr_results_are_the_documents_as_added(store: HybridVectorStore) -> None:
    (document,) = store.max_marginal_relevance_search(QUERY, k=1)
    assert document.page_content in {TWIN_A, TWIN_B}
    assert document.metadata == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lambda_mult": 1.5}, "lambda_mult must be a number from 0"),
        ({"lambda_mult": "high"}, "lambda_mult must be a number from 0"),
        ({"fetch_k": 2}, "fetch_k=2 is below the 4 results"),
        ({"fetch_k": 0}, "fetch_k must be >= 1"),
        ({"search_type": "similarity_search"}, "search_type='similarity_search' is not one of"),
    ],
)
def test_bad_mmr_options_are_refused(
    store: HybridVectorStore, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        store.retriever.invoke(QUERY, k=4, **{"search_type": "mmr", **options})


def test_mmr_by_vector_says_to_pass_the_text(store: HybridVectorStore) -> None:
    with pytest.raises(NotImplementedError, match="max_marginal_relevance_search\\(query"):
        store.max_marginal_relevance_search_by_vector([0.1] * 384)
