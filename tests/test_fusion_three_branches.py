"""Every fusion method over three branches (dense, SPLADE, BM25) and any subset of them.

The values are computed by hand from each method's formula (ranx style: a tiny run,
exact expected scores), on lists chosen so the arithmetic is short:

    dense:  a 3,  b 2,  c 1      min-max: a 1, b 1/2, c 0    DBSF: 2/3, 1/2, 1/3
    sparse: b 12, d 8,  a 4      min-max: b 1, d 1/2, a 0    (mean 8, sample std 4)
    bm25:   c 20, a 15, e 10     min-max: c 1, a 1/2, e 0    (mean 15, sample std 5)

Each list's best score is one sample std above its mean, so every branch's adaptive
confidence is 1, and DBSF maps rank 1, 2, 3 to 2/3, 1/2, 1/3 in every branch.
"""

from __future__ import annotations

import itertools
import math

import pytest

from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.adaptive import adaptive_weights
from hybrid_retriever.fusion.branches import ALL_BRANCHES, BM25, DENSE, SPARSE
from hybrid_retriever.fusion.methods import DEFAULT_FUSION, FusionMethod, default_weights, fuse
from hybrid_retriever.fusion.query_length import query_length_weights
from hybrid_retriever.fusion.rrf import BranchHit, FusedHit

RANKINGS = {
    DENSE: [BranchHit("a", 3.0), BranchHit("b", 2.0), BranchHit("c", 1.0)],
    SPARSE: [BranchHit("b", 12.0), BranchHit("d", 8.0), BranchHit("a", 4.0)],
    BM25: [BranchHit("c", 20.0), BranchHit("a", 15.0), BranchHit("e", 10.0)],
}


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def scores(hits: list[FusedHit]) -> dict[str, float]:
    return {hit.id: hit.score for hit in hits}


def check(hits: list[FusedHit], expected: list[tuple[str, float]]) -> None:
    """Order and scores as computed by hand."""
    assert [hit.id for hit in hits] == [point for point, _ in expected]
    for hit, (_, score) in zip(hits, expected, strict=True):
        assert hit.score == pytest.approx(score, abs=1e-12), hit.id


def test_rrf_three_branches() -> None:
    # k = 1: a = 1/(1+1) + 1/(1+3) + 1/(1+2); b = 1/3 + 1/2; c = 1/4 + 1/2; d = 1/3; e = 1/4.
    hits = fuse(RANKINGS, method=FusionMethod.RRF, rrf_k=1)
    check(hits, [("a", 13 / 12), ("b", 5 / 6), ("c", 3 / 4), ("d", 1 / 3), ("e", 1 / 4)])
    assert hits[0].ranks == {DENSE: 1, SPARSE: 3, BM25: 2}
    assert hits[0].scores == {DENSE: 3.0, SPARSE: 4.0, BM25: 15.0}
    assert hits[3].ranks == {DENSE: None, SPARSE: 2, BM25: None}


def test_weighted_rrf_three_branches() -> None:
    # w = dense 1, sparse 0.5, bm25 2, k = 1:
    # a = 1/2 + 0.5/4 + 2/3 = 31/24; b = 1/3 + 0.5/2 = 7/12; c = 1/4 + 2/2 = 5/4;
    # d = 0.5/3 = 1/6; e = 2/4 = 1/2.
    hits = fuse(
        RANKINGS, method=FusionMethod.RRF, rrf_k=1, weights={DENSE: 1, SPARSE: 0.5, BM25: 2}
    )
    check(hits, [("a", 31 / 24), ("c", 5 / 4), ("b", 7 / 12), ("e", 1 / 2), ("d", 1 / 6)])


def test_rrf_paper_k() -> None:
    hits = fuse(RANKINGS, method=FusionMethod.RRF)
    assert scores(hits)["a"] == pytest.approx(1 / 61 + 1 / 63 + 1 / 62, abs=1e-15)
    assert scores(hits)["e"] == pytest.approx(1 / 63, abs=1e-15)


def test_convex_three_branches() -> None:
    # alphas 0.5, 0.2, 0.3 (weights 5, 2, 3 rescaled to sum to 1):
    # a = 0.5*1 + 0.2*0 + 0.3*1/2 = 0.65; b = 0.5*1/2 + 0.2*1 = 0.45; c = 0.3*1 = 0.3;
    # d = 0.2*1/2 = 0.1; e = 0.3*0 = 0.
    expected = [("a", 0.65), ("b", 0.45), ("c", 0.3), ("d", 0.1), ("e", 0.0)]
    check(
        fuse(RANKINGS, method=FusionMethod.CONVEX, weights={DENSE: 5, SPARSE: 2, BM25: 3}), expected
    )
    check(
        fuse(RANKINGS, method=FusionMethod.CONVEX, weights={DENSE: 0.5, SPARSE: 0.2, BM25: 0.3}),
        expected,
    )


def test_convex_equal_three_branches() -> None:
    # alphas 1/3: a = (1 + 0 + 1/2)/3 = 1/2; b = (1/2 + 1)/3 = 1/2; c = 1/3; d = 1/6; e = 0.
    got = scores(fuse(RANKINGS, method=FusionMethod.CONVEX))
    assert got == pytest.approx({"a": 0.5, "b": 0.5, "c": 1 / 3, "d": 1 / 6, "e": 0.0}, abs=1e-12)


def test_dbsf_three_branches() -> None:
    # a = 2/3 + 1/3 + 1/2 = 3/2; b = 1/2 + 2/3 = 7/6; c = 1/3 + 2/3 = 1; d = 1/2; e = 1/3.
    hits = fuse(RANKINGS, method=FusionMethod.DBSF)
    check(hits, [("a", 3 / 2), ("b", 7 / 6), ("c", 1.0), ("d", 1 / 2), ("e", 1 / 3)])
    # w = dense 1, sparse 0, bm25 3: a = 2/3 + 3/2 = 13/6; c = 1/3 + 2 = 7/3; e = 1;
    # b = 1/2; d = 0.
    hits = fuse(RANKINGS, method=FusionMethod.DBSF, weights={DENSE: 1, SPARSE: 0, BM25: 3})
    check(hits, [("c", 7 / 3), ("a", 13 / 6), ("e", 1.0), ("b", 1 / 2), ("d", 0.0)])


def test_adaptive_three_branches() -> None:
    # Confidences all 1, so alphas = the prior rescaled: 2, 1, 1 -> 1/2, 1/4, 1/4.
    prior = {DENSE: 2.0, SPARSE: 1.0, BM25: 1.0}
    assert adaptive_weights(RANKINGS, weights=prior) == pytest.approx(
        {DENSE: 0.5, SPARSE: 0.25, BM25: 0.25}, abs=1e-12
    )
    # a = 1/2 + 0 + 1/8 = 5/8; b = 1/4 + 1/4 = 1/2; c = 1/4; d = 1/8; e = 0.
    hits = fuse(RANKINGS, method=FusionMethod.ADAPTIVE, weights=prior)
    check(hits, [("a", 5 / 8), ("b", 1 / 2), ("c", 1 / 4), ("d", 1 / 8), ("e", 0.0)])


def test_adaptive_confidence_of_a_third_branch() -> None:
    # bm25 scores 20, 12, 10: mean 14, sample variance (36 + 4 + 16)/2 = 28,
    # confidence (20 - 14)/sqrt(28) = 3/sqrt(7); dense and sparse stay at 1.
    rankings = {
        **RANKINGS,
        BM25: [BranchHit("c", 20.0), BranchHit("a", 12.0), BranchHit("e", 10.0)],
    }
    c = 3 / math.sqrt(7)
    assert adaptive_weights(rankings) == pytest.approx(
        {DENSE: 1 / (2 + c), SPARSE: 1 / (2 + c), BM25: c / (2 + c)}, abs=1e-12
    )
    # A branch with one hit has no confidence: it takes the mean of the others', (1 + 1)/2.
    rankings = {**RANKINGS, BM25: [BranchHit("c", 20.0)]}
    assert adaptive_weights(rankings) == pytest.approx(dict.fromkeys(ALL_BRANCHES, 1 / 3))


SUBSETS = [subset for size in (1, 2, 3) for subset in itertools.combinations(ALL_BRANCHES, size)]


@pytest.mark.parametrize("method", list(FusionMethod))
@pytest.mark.parametrize("subset", SUBSETS, ids="+".join)
def test_every_method_takes_any_subset_with_weights(
    method: FusionMethod, subset: tuple[str, ...]
) -> None:
    rankings = {branch: RANKINGS[branch] for branch in subset}
    weights = {branch: float(i + 1) for i, branch in enumerate(subset)}
    hits = fuse(rankings, method=method, weights=weights)
    returned = {hit.id for branch in subset for hit in RANKINGS[branch]}
    assert {hit.id for hit in hits} == returned
    assert all(set(hit.ranks) == set(subset) == set(hit.scores) for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    with pytest.raises(InvalidParameterError, match="unknown branches"):
        fuse(rankings, method=method, weights={**weights, "colbert": 1.0})


def test_a_zero_weight_branch_adds_nothing() -> None:
    # BM25 at weight 0 is dense + sparse alone (RRF, k = 1): e, only in bm25, scores 0.
    with_zero = scores(
        fuse(RANKINGS, method=FusionMethod.RRF, rrf_k=1, weights={DENSE: 1, SPARSE: 1, BM25: 0})
    )
    two = scores(
        fuse({DENSE: RANKINGS[DENSE], SPARSE: RANKINGS[SPARSE]}, method=FusionMethod.RRF, rrf_k=1)
    )
    assert with_zero == pytest.approx({**two, "e": 0.0}, abs=1e-15)


@pytest.mark.parametrize(
    ("n", "branches", "expected"),
    [
        # 10 words: dense 0.5; the lexical half split 1:3 (BM25_FRACTION 0.75).
        (10, ALL_BRANCHES, {DENSE: 0.5, SPARSE: 0.125, BM25: 0.375}),
        # 40 words: dense 0.5 + 0.05 * 2 = 0.6; 0.4 left to words.
        (40, ALL_BRANCHES, {DENSE: 0.6, SPARSE: 0.1, BM25: 0.3}),
        (40, (DENSE, BM25), {DENSE: 0.6, BM25: 0.4}),
        (40, (BM25, DENSE), {DENSE: 0.6, BM25: 0.4}),
        (40, (SPARSE, BM25), {SPARSE: 0.25, BM25: 0.75}),
        (40, (BM25,), {BM25: 1.0}),
        (40, (DENSE,), {DENSE: 1.0}),
        # 2 words: dense 0.5 + 0.05 * log2(0.2) = 0.38390...
        (
            2,
            ALL_BRANCHES,
            {
                DENSE: 0.5 + 0.05 * math.log2(0.2),
                SPARSE: (0.5 - 0.05 * math.log2(0.2)) * 0.25,
                BM25: (0.5 - 0.05 * math.log2(0.2)) * 0.75,
            },
        ),
    ],
)
def test_query_length_weights_over_three_branches(
    n: int, branches: tuple[str, ...], expected: dict[str, float]
) -> None:
    weights = query_length_weights(words(n), branches=branches)
    assert weights == pytest.approx(expected, abs=1e-12)
    assert math.fsum(weights.values()) == pytest.approx(1.0, abs=1e-12)


def test_query_length_bm25_fraction() -> None:
    weights = query_length_weights(words(40), branches=ALL_BRANCHES, bm25_fraction=0.5)
    assert weights == pytest.approx({DENSE: 0.6, SPARSE: 0.2, BM25: 0.2}, abs=1e-12)
    only_bm25 = query_length_weights(words(40), branches=ALL_BRANCHES, bm25_fraction=1.0)
    assert only_bm25 == pytest.approx({DENSE: 0.6, SPARSE: 0.0, BM25: 0.4}, abs=1e-12)


def test_query_length_two_branches_unchanged() -> None:
    for n in (1, 2, 5, 10, 33, 200, 5000):
        query = words(n)
        dense = min(0.8, max(0.3, 0.5 + 0.05 * math.log2(max(1, n) / 10)))
        expected = {DENSE: dense, SPARSE: 1.0 - dense}
        assert query_length_weights(query) == expected  # exactly, not approximately
        assert query_length_weights(query, branches=(SPARSE, DENSE)) == expected
        assert default_weights(DEFAULT_FUSION, query) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"branches": ("dense", "colbert")}, "branches must name one or more of"),
        ({"branches": ()}, "branches must name one or more of"),
        ({"branches": "dense"}, "not a str"),
        ({"bm25_fraction": 1.5}, r"bm25_fraction must be in \[0, 1\]"),
    ],
)
def test_query_length_bad_branches(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        query_length_weights(words(3), **kwargs)  # type: ignore[arg-type]


def test_default_fusion_over_three_branches() -> None:
    # A 10-word query: alphas 0.5, 0.125, 0.375 over the min-max scores:
    # a = 0.5 + 0 + 0.1875 = 0.6875; b = 0.25 + 0.125 = 0.375; c = 0.375 (a tie, kept in
    # first-seen order); d = 0.0625; e = 0.
    weights = default_weights(DEFAULT_FUSION, words(10), branches=RANKINGS)
    assert weights == {DENSE: 0.5, SPARSE: 0.125, BM25: 0.375}
    hits = fuse(RANKINGS, method=DEFAULT_FUSION, weights=weights)
    check(hits, [("a", 0.6875), ("b", 0.375), ("c", 0.375), ("d", 0.0625), ("e", 0.0)])
    for method in FusionMethod:
        if method is not DEFAULT_FUSION:
            assert default_weights(method, words(10), branches=RANKINGS) is None
