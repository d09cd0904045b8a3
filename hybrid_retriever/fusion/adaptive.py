"""Adaptive fusion: a convex combination whose weights each query sets from its own scores.

Our design, measured in ``benchmarks/fusion_study.py``. The normalisation and the
combination are those of :mod:`hybrid_retriever.fusion.convex` (Bruch et al., TOIS
2023); what adapts is alpha. Each branch's *confidence* for this query is the z-score
of its best hit among the hits it returned::

    c_b = (s_b(1) - mean_b) / std_b        # sample std over the branch's returned scores
    alpha_b = w_b * c_b / sum over branches of w * c
    score(d) = sum over branches b that returned d of  alpha_b * minmax_b(s_b(d))

A branch whose best hit stands far out of its own score distribution has found
something specific; a branch whose scores are flat has not. This is a post-retrieval
query-performance predictor of the score-dispersion family (NQC: Shtok, Kurland,
Carmel, Raiber and Markovits, "Predicting Query Performance by Query-Drift
Estimation", ACM TOIS 30(2), 2012), made scale-free so that a cosine list and a SPLADE
dot-product list can be compared. It needs no labels and no state: the same query
always gets the same weights. ``weights`` are a prior that multiplies the confidences.

A branch with fewer than two hits, or with all scores equal, has no defined
confidence; it takes the mean confidence of the branches that have one (1.0 if none
has), so two such branches are weighted by ``weights`` alone.

What it cannot do: when one branch is much weaker on a whole corpus but just as
"confident" per query (the study's capped-SPLADE settings), no per-query signal tells
the two apart; there, labelled queries and ``hybrid-retriever tune`` are the remedy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from hybrid_retriever.fusion.convex import min_max_normalise, weighted_score_sum
from hybrid_retriever.fusion.rrf import BranchHit, FusedHit, check_weights


def branch_confidence(scores: Sequence[float]) -> float | None:
    """z-score of the best score among ``scores``; None with fewer than 2 or no spread."""
    n = len(scores)
    if n < 2:
        return None
    mean = math.fsum(scores) / n
    std = math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / (n - 1))
    if std == 0:
        return None
    return (max(scores) - mean) / std


def adaptive_weights(
    rankings: Mapping[str, Sequence[BranchHit]],
    *,
    weights: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """This query's alpha per branch (summing to 1): prior weight times confidence."""
    prior = check_weights(weights, rankings.keys())
    confidence = {
        branch: branch_confidence([hit.score for hit in _unique(hits)])
        for branch, hits in rankings.items()
    }
    known = [c for c in confidence.values() if c is not None]
    fallback = math.fsum(known) / len(known) if known else 1.0
    raw = {b: prior[b] * (fallback if c is None else c) for b, c in confidence.items()}
    # > 0: confidences are > 0 (the best score of a spread exceeds the mean) and
    # check_weights refuses all-zero priors.
    total = math.fsum(raw.values())
    return {b: value / total for b, value in raw.items()}


def adaptive_fusion(
    rankings: Mapping[str, Sequence[BranchHit]],
    *,
    weights: Mapping[str, float] | None = None,
    limit: int | None = None,
) -> list[FusedHit]:
    """Convex combination of min-max scores with per-query alphas, best first."""
    alphas = adaptive_weights(rankings, weights=weights)
    return weighted_score_sum(rankings, min_max_normalise, weights=alphas, limit=limit)


def _unique(hits: Sequence[BranchHit]) -> list[BranchHit]:
    """A branch's hits with repeats of an id dropped (first listing counts)."""
    seen: set[str] = set()
    unique = []
    for hit in hits:
        if hit.id not in seen:
            seen.add(hit.id)
            unique.append(hit)
    return unique
