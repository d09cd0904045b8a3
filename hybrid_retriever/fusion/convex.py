"""Convex combination of min-max normalised scores (and the score-sum both score fusions share).

Bruch, Gai and Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval",
ACM TOIS 42(1), 2023. https://arxiv.org/abs/2210.11934 — a convex combination of
normalised lexical and semantic scores beats RRF when tuned and needs few labels
to tune. Min-max normalisation: Lee, "Analyses of Multiple Evidence Combination",
SIGIR 1997.

Per branch ``b``, over the hits that branch returned for this query::

    norm_b(s) = (s - min_b) / (max_b - min_b)        # 1.0 for every hit if max_b == min_b
    score(d)  = sum over branches b that returned d of  alpha_b * norm_b(s_b(d))

with ``alpha_b = w_b / sum(w)``: the ``weights`` mapping, rescaled to sum to 1, so
``{"dense": 0.7, "sparse": 0.3}`` is alpha = 0.7 for dense. A document a branch did
not return gets nothing from that branch, as if it scored that branch's minimum.
Normalising over the returned hits (not the score function's theoretical range)
makes cosine and SPLADE dot products comparable without knowing either's scale.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence

from hybrid_retriever.fusion.rrf import BranchHit, FusedHit, check_weights

Normaliser = Callable[[Sequence[float]], list[float]]


def min_max_normalise(scores: Sequence[float]) -> list[float]:
    """Scores mapped linearly onto [0, 1]; all 1.0 when they are all equal (or just one)."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high == low:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def convex_combination(
    rankings: Mapping[str, Sequence[BranchHit]],
    *,
    weights: Mapping[str, float] | None = None,
    limit: int | None = None,
) -> list[FusedHit]:
    """Fuse by ``sum_b alpha_b * minmax_b(score)``, best first; alpha: ``weights`` summing to 1."""
    branch_weights = check_weights(weights, rankings.keys())
    total = sum(branch_weights.values())  # > 0: check_weights refuses all-zero weights
    alphas = {b: w / total for b, w in branch_weights.items()}
    return weighted_score_sum(rankings, min_max_normalise, weights=alphas, limit=limit)


def weighted_score_sum(
    rankings: Mapping[str, Sequence[BranchHit]],
    normalise: Normaliser,
    *,
    weights: Mapping[str, float] | None,
    limit: int | None,
) -> list[FusedHit]:
    """Normalise each branch's scores with ``normalise``, weight them, sum per document.

    This is Qdrant's ``score_fusion`` (normalise each list, multiply by its weight,
    sum by id). Ties keep first-seen order (branch order, then rank), like the RRF
    module; a branch that lists a point twice counts its first listing only.
    """
    branch_weights = check_weights(weights, rankings.keys())
    fused: dict[str, float] = {}
    first_rank: dict[str, dict[str, int]] = {}  # branch -> id -> its first position
    for branch, hits in rankings.items():
        first = first_rank[branch] = {}
        for position, hit in enumerate(hits):
            first.setdefault(hit.id, position)
        normalised = normalise([hits[p].score for p in first.values()])
        weight = branch_weights[branch]
        for point_id, value in zip(first, normalised, strict=True):
            fused[point_id] = fused.get(point_id, 0.0) + weight * value
    # Stable (ties in first-seen order), and ranks and raw scores only for what is kept.
    if limit is None:
        order = sorted(fused, key=fused.__getitem__, reverse=True)
    else:
        order = heapq.nlargest(limit, fused, key=fused.__getitem__)
    return [
        FusedHit(
            id=i,
            score=fused[i],
            ranks={b: first[i] + 1 if i in first else None for b, first in first_rank.items()},
            scores={
                b: rankings[b][first[i]].score if i in first else None
                for b, first in first_rank.items()
            },
        )
        for i in order
    ]
