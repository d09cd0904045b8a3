"""DBSF, convex and adaptive fusion against hand-computed values, and DBSF against Qdrant."""

from __future__ import annotations

import math
import random

import pytest
from qdrant_client import QdrantClient
from qdrant_client.http import models

from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.adaptive import adaptive_fusion, adaptive_weights, branch_confidence
from hybrid_retriever.fusion.convex import convex_combination, min_max_normalise
from hybrid_retriever.fusion.dbsf import distribution_based_score_fusion, distribution_normalise
from hybrid_retriever.fusion.methods import DEFAULT_FUSION, FusionMethod, fuse
from hybrid_retriever.fusion.rrf import BranchHit, reciprocal_rank_fusion
from hybrid_retriever.search_options import check_fusion


def hits(*pairs: tuple[str, float]) -> list[BranchHit]:
    return [BranchHit(id=i, score=s) for i, s in pairs]


# dense: mean 0.7, sample std 0.2, best z = 1;
# sparse: mean 8, sample std 2*sqrt(2), best z = 1/sqrt(2)
RANKINGS = {
    "dense": hits(("a", 0.9), ("b", 0.7), ("c", 0.5)),
    "sparse": hits(("b", 10.0), ("d", 6.0)),
}
SQRT2 = math.sqrt(2)


def scores(fused: list) -> dict[str, float]:  # type: ignore[type-arg]
    return {h.id: h.score for h in fused}


# -- DBSF ----------------------------------------------------------------------------------------


def test_dbsf_hand_computed() -> None:
    # dense window 0.7 ± 0.6 -> a 0.8/1.2, b 0.6/1.2, c 0.4/1.2
    # sparse window 8 ± 6*sqrt(2) -> b 0.5 + sqrt(2)/12, d 0.5 - sqrt(2)/12
    fused = distribution_based_score_fusion(RANKINGS)
    assert [h.id for h in fused] == ["b", "a", "d", "c"]
    got = scores(fused)
    assert got["a"] == pytest.approx(2 / 3, abs=1e-15)
    assert got["b"] == pytest.approx(0.5 + 0.5 + SQRT2 / 12, abs=1e-15)
    assert got["c"] == pytest.approx(1 / 3, abs=1e-15)
    assert got["d"] == pytest.approx(0.5 - SQRT2 / 12, abs=1e-15)


def test_dbsf_single_hit_and_zero_variance_score_half() -> None:
    assert distribution_normalise([]) == []
    assert distribution_normalise([3.0]) == [0.5]
    assert distribution_normalise([2.0, 2.0, 2.0]) == [0.5, 0.5, 0.5]


def test_dbsf_does_not_clip() -> None:
    # One outlier among many equal scores lies beyond 3 std: Qdrant does not clip it.
    normalised = distribution_normalise([10.0] + [0.0] * 99)
    assert normalised[0] > 1.0


def test_dbsf_weights_multiply_normalised_scores() -> None:
    fused = distribution_based_score_fusion(RANKINGS, weights={"dense": 2.0, "sparse": 0.0})
    got = scores(fused)
    assert got["a"] == pytest.approx(4 / 3, abs=1e-15)
    assert got["d"] == 0.0
    assert fused[0].id == "a"
    assert by_id(fused)["d"].ranks == {"dense": None, "sparse": 2}


def by_id(fused: list) -> dict:  # type: ignore[type-arg]
    return {h.id: h for h in fused}


def dbsf_collection(seed: int) -> tuple[QdrantClient, list[list[float]], list[models.SparseVector]]:
    rng = random.Random(seed)
    client = QdrantClient(location=":memory:")
    client.create_collection(
        "c",
        vectors_config={"dense": models.VectorParams(size=8, distance=models.Distance.COSINE)},
        sparse_vectors_config={"sparse": models.SparseVectorParams()},
    )
    points = []
    for n in range(60):
        terms = sorted(rng.sample(range(50), rng.randint(1, 6)))
        points.append(
            models.PointStruct(
                id=n,
                vector={
                    "dense": [rng.gauss(0, 1) for _ in range(8)],
                    "sparse": models.SparseVector(
                        indices=terms, values=[rng.uniform(0.1, 3.0) for _ in terms]
                    ),
                },
            )
        )
    client.upsert("c", points)
    queries = [[rng.gauss(0, 1) for _ in range(8)] for _ in range(5)]
    sparse_queries = []
    for _ in range(5):
        terms = sorted(rng.sample(range(50), 8))
        sparse_queries.append(
            models.SparseVector(indices=terms, values=[rng.uniform(0.1, 2.0) for _ in terms])
        )
    return client, queries, sparse_queries


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("prefetch", [1, 7, 30])
def test_dbsf_identical_to_qdrant_embedded(seed: int, prefetch: int) -> None:
    """Same ids, same order and scores within 1e-6 of Qdrant's own FusionQuery(DBSF)."""
    client, dense_queries, sparse_queries = dbsf_collection(seed)
    try:
        for dense, sparse in zip(dense_queries, sparse_queries, strict=True):
            prefetches = [
                models.Prefetch(query=dense, using="dense", limit=prefetch),
                models.Prefetch(query=sparse, using="sparse", limit=prefetch),
            ]
            theirs = client.query_points(
                "c",
                prefetch=prefetches,
                query=models.FusionQuery(fusion=models.Fusion.DBSF),
                limit=100,
            ).points
            branches = {
                name: [
                    BranchHit(id=str(p.id), score=p.score)
                    for p in client.query_points(
                        "c", query=query, using=name, limit=prefetch
                    ).points
                ]
                for name, query in (("dense", dense), ("sparse", sparse))
            }
            ours = distribution_based_score_fusion(branches)
            assert [h.id for h in ours] == [str(p.id) for p in theirs]
            for mine, reference in zip(ours, theirs, strict=True):
                assert mine.score == pytest.approx(reference.score, rel=1e-6, abs=1e-6)
    finally:
        client.close()


# -- convex --------------------------------------------------------------------------------------


def test_min_max_hand_computed() -> None:
    assert min_max_normalise([0.9, 0.7, 0.5]) == pytest.approx([1.0, 0.5, 0.0], abs=1e-15)
    assert min_max_normalise([4.0]) == [1.0]
    assert min_max_normalise([2.0, 2.0]) == [1.0, 1.0]
    assert min_max_normalise([]) == []


def test_convex_equal_weights() -> None:
    # dense min-max: a 1, b 0.5, c 0; sparse: b 1, d 0; alpha 0.5 each.
    fused = convex_combination(RANKINGS)
    assert [(h.id, h.score) for h in fused] == [("b", 0.75), ("a", 0.5), ("c", 0.0), ("d", 0.0)]


def test_convex_weights_are_rescaled_to_sum_one() -> None:
    fused = convex_combination(RANKINGS, weights={"dense": 3.0, "sparse": 1.0})
    assert [h.id for h in fused] == ["a", "b", "c", "d"]
    assert scores(fused) == pytest.approx({"a": 0.75, "b": 0.625, "c": 0.0, "d": 0.0})


def test_convex_explains_ranks_and_raw_scores() -> None:
    fused = by_id(convex_combination(RANKINGS))
    assert fused["b"].ranks == {"dense": 2, "sparse": 1}
    assert fused["b"].scores == {"dense": 0.7, "sparse": 10.0}
    assert fused["a"].ranks == {"dense": 1, "sparse": None}


def test_convex_repeated_id_counts_first_listing() -> None:
    fused = convex_combination({"dense": hits(("a", 1.0), ("b", 0.0), ("a", 0.5))}, limit=1)
    assert [(h.id, h.score, h.ranks) for h in fused] == [("a", 1.0, {"dense": 1})]


# -- adaptive ------------------------------------------------------------------------------------


def test_branch_confidence_is_best_z_score() -> None:
    assert branch_confidence([0.9, 0.7, 0.5]) == pytest.approx(1.0, abs=1e-15)
    assert branch_confidence([10.0, 6.0]) == pytest.approx(1 / SQRT2, abs=1e-15)
    assert branch_confidence([1.0]) is None
    assert branch_confidence([2.0, 2.0]) is None


def test_adaptive_hand_computed() -> None:
    # alpha_dense = 1 / (1 + 1/sqrt(2)) = 2 - sqrt(2); alpha_sparse = sqrt(2) - 1
    alphas = adaptive_weights(RANKINGS)
    assert alphas["dense"] == pytest.approx(2 - SQRT2, abs=1e-15)
    assert alphas["sparse"] == pytest.approx(SQRT2 - 1, abs=1e-15)
    fused = adaptive_fusion(RANKINGS)
    assert [h.id for h in fused] == ["b", "a", "c", "d"]
    # b: (2 - sqrt 2) * 0.5 + (sqrt 2 - 1) * 1 = sqrt(2) / 2
    assert scores(fused) == pytest.approx(
        {"b": SQRT2 / 2, "a": 2 - SQRT2, "c": 0.0, "d": 0.0}, abs=1e-15
    )


def test_adaptive_prior_weights_multiply_confidence() -> None:
    alphas = adaptive_weights(RANKINGS, weights={"dense": 1.0, "sparse": SQRT2})
    assert alphas == pytest.approx({"dense": 0.5, "sparse": 0.5}, abs=1e-15)
    alphas = adaptive_weights(RANKINGS, weights={"sparse": 0.0})
    assert alphas == {"dense": 1.0, "sparse": 0.0}


def test_adaptive_branch_without_confidence_takes_the_others_mean() -> None:
    one_hit = {"dense": RANKINGS["dense"], "sparse": hits(("d", 4.0))}
    assert adaptive_weights(one_hit) == {"dense": 0.5, "sparse": 0.5}
    nothing = {"dense": hits(("a", 1.0)), "sparse": []}
    assert adaptive_weights(nothing) == {"dense": 0.5, "sparse": 0.5}
    assert [(h.id, h.score) for h in adaptive_fusion(nothing)] == [("a", 0.5)]


# -- the dispatcher ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "direct"),
    [
        (FusionMethod.RRF, lambda r: reciprocal_rank_fusion(r, limit=3)),
        (FusionMethod.DBSF, lambda r: distribution_based_score_fusion(r, limit=3)),
        (FusionMethod.CONVEX, lambda r: convex_combination(r, limit=3)),
        (FusionMethod.ADAPTIVE, lambda r: adaptive_fusion(r, limit=3)),
    ],
)
def test_fuse_dispatches(method: FusionMethod, direct: object) -> None:
    assert fuse(RANKINGS, method=method, limit=3) == direct(RANKINGS)  # type: ignore[operator]


def test_method_names_and_default() -> None:
    assert [m.value for m in FusionMethod] == ["rrf", "dbsf", "convex", "adaptive"]
    assert check_fusion("dbsf") is FusionMethod.DBSF
    assert DEFAULT_FUSION is FusionMethod.CONVEX
    with pytest.raises(InvalidParameterError, match="fusion must be one of"):
        check_fusion("minmax")


@pytest.mark.parametrize("method", list(FusionMethod))
def test_every_method_handles_empty_and_one_sided_input(method: FusionMethod) -> None:
    assert fuse({"dense": [], "sparse": []}, method=method) == []
    fused = fuse({"dense": hits(("a", 0.3), ("b", 0.2)), "sparse": []}, method=method)
    assert [h.id for h in fused] == ["a", "b"]


@pytest.mark.parametrize("method", list(FusionMethod))
def test_every_method_refuses_bad_weights(method: FusionMethod) -> None:
    with pytest.raises(InvalidParameterError, match="At least one"):
        fuse(RANKINGS, method=method, weights={"dense": 0.0, "sparse": 0.0})
