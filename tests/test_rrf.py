"""RRF against hand-computed values and against Qdrant's own implementation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qdrant_client.http import models
from qdrant_client.hybrid.fusion import reciprocal_rank_fusion as qdrant_rrf

from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.rrf import BranchHit, qdrant_rrf_k, reciprocal_rank_fusion


def hits(*ids: str) -> list[BranchHit]:
    return [BranchHit(id=i, score=10.0 - n) for n, i in enumerate(ids)]


def test_hand_computed_scores_paper_convention() -> None:
    fused = reciprocal_rank_fusion({"dense": hits("a", "b", "c"), "sparse": hits("b", "d", "a")})
    scores = {h.id: h.score for h in fused}
    # a: 1/(60+1) + 1/(60+3); b: 1/(60+2) + 1/(60+1); c: 1/63; d: 1/62
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 63, abs=1e-15)
    assert scores["b"] == pytest.approx(1 / 62 + 1 / 61, abs=1e-15)
    assert scores["c"] == pytest.approx(1 / 63, abs=1e-15)
    assert scores["d"] == pytest.approx(1 / 62, abs=1e-15)
    assert [h.id for h in fused] == ["b", "a", "d", "c"]


def test_explanations_ranks_and_raw_scores() -> None:
    fused = reciprocal_rank_fusion({"dense": hits("a", "b"), "sparse": hits("b")})
    by_id = {h.id: h for h in fused}
    assert by_id["a"].ranks == {"dense": 1, "sparse": None}
    assert by_id["a"].scores == {"dense": 10.0, "sparse": None}
    assert by_id["b"].ranks == {"dense": 2, "sparse": 1}
    assert by_id["b"].scores == {"dense": 9.0, "sparse": 10.0}


def test_weights_and_k() -> None:
    fused = reciprocal_rank_fusion(
        {"dense": hits("a"), "sparse": hits("b")}, rrf_k=1, weights={"dense": 2.0, "sparse": 0.5}
    )
    assert [(h.id, h.score) for h in fused] == [("a", 2.0 / 2), ("b", 0.5 / 2)]


def test_zero_weight_branch_reports_ranks_but_adds_nothing() -> None:
    fused = reciprocal_rank_fusion(
        {"dense": hits("a"), "sparse": hits("b", "a")}, weights={"sparse": 0.0}
    )
    assert [(h.id, h.score) for h in fused] == [("a", 1 / 61), ("b", 0.0)]
    assert fused[0].ranks == {"dense": 1, "sparse": 2}


def test_limit_and_empty_branches() -> None:
    assert reciprocal_rank_fusion({"dense": [], "sparse": []}) == []
    assert [h.id for h in reciprocal_rank_fusion({"dense": hits("a", "b", "c")}, limit=2)] == [
        "a",
        "b",
    ]


def test_qdrant_k_mapping() -> None:
    assert qdrant_rrf_k(60) == 61
    assert qdrant_rrf_k(1) == 2  # Qdrant's default k=2 is the paper's k=1
    with pytest.raises(InvalidParameterError, match="integer"):
        qdrant_rrf_k(2.5)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"dense": -1.0}, "must be finite and >= 0"),
        ({"dense": math.nan}, "must be finite and >= 0"),
        ({"dense": "1"}, "must be a number"),
        ({"other": 1.0}, "unknown branches"),
        ({"dense": 0.0, "sparse": 0.0}, "At least one"),
        ([1.0, 2.0], "must be a mapping"),
    ],
)
def test_bad_weights(weights: object, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        reciprocal_rank_fusion({"dense": [], "sparse": []}, weights=weights)  # type: ignore[arg-type]


@pytest.mark.parametrize("rrf_k", [-1, math.inf, "60", True])
def test_bad_rrf_k(rrf_k: object) -> None:
    with pytest.raises(InvalidParameterError, match="rrf_k"):
        reciprocal_rank_fusion({"dense": []}, rrf_k=rrf_k)  # type: ignore[arg-type]


ranked_ids = st.lists(st.integers(min_value=0, max_value=60), unique=True, max_size=40)


@settings(max_examples=300, deadline=None)
@given(dense=ranked_ids, sparse=ranked_ids, rrf_k=st.integers(min_value=0, max_value=100))
def test_identical_to_qdrant_rrf(dense: list[int], sparse: list[int], rrf_k: int) -> None:
    """Same ids, same order (ties included) and same scores as qdrant-client's RRF."""

    def response(ids: list[int]) -> list[models.ScoredPoint]:
        return [models.ScoredPoint(id=i, version=0, score=1.0 / (n + 1)) for n, i in enumerate(ids)]

    theirs = qdrant_rrf(
        [response(dense), response(sparse)], limit=1000, ranking_constant_k=qdrant_rrf_k(rrf_k)
    )
    ours = reciprocal_rank_fusion(
        {"dense": hits(*map(str, dense)), "sparse": hits(*map(str, sparse))}, rrf_k=rrf_k
    )
    assert [h.id for h in ours] == [str(p.id) for p in theirs]
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.score == pytest.approx(reference.score, rel=1e-12)
