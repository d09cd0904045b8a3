"""Distribution-based score fusion (DBSF), Qdrant's formula computed client-side.

Source: Qdrant, ``lib/segment/src/common/score_fusion.rs`` (``distr_norm``, used by
``Fusion::Dbsf`` since v1.11), and qdrant-client's ``hybrid/fusion.py``
(``distribution_based_score_fusion``, its embedded mode). Introduced by Michelangiolo
Mazzeschi, "Distribution-based score fusion" (2023).

Per branch, over the hits it returned for this query::

    mean, std = mean and *sample* standard deviation (n - 1) of the branch's scores
    norm(s)   = (s - (mean - 3 std)) / ((mean + 3 std) - (mean - 3 std))
    score(d)  = sum over branches b that returned d of  w_b * norm_b(s_b(d))

Details that follow Qdrant exactly: one hit scores 0.5; zero variance gives every hit
0.5; nothing is clipped (a score beyond 3 std maps outside [0, 1]); a branch that did
not return ``d`` adds nothing. Qdrant computes in float32, this module in float64, so
fused scores agree to about 1e-6 relative. Weights multiply the normalised scores, as
Qdrant's ``ScoreFusion.weights`` do; unweighted is all 1.

``norm`` is ``0.5 + z / 6`` for the z-score ``z``: DBSF is a sum of z-scores (the
"CombSUM of z-scores" of Montague and Aslam, CIKM 2001), so a branch whose best hit
stands far out of its own distribution weighs more than one whose scores are flat.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from hybrid_retriever.fusion.convex import weighted_score_sum
from hybrid_retriever.fusion.rrf import BranchHit, FusedHit

SIGMAS = 3.0
"""Half-width of the normalisation window, in standard deviations (Qdrant: 3)."""


def distribution_normalise(scores: Sequence[float]) -> list[float]:
    """Map ``mean ± 3 sample-std`` onto [0, 1]; 0.5 for a single score or zero variance."""
    n = len(scores)
    if n < 2:
        return [0.5] * n
    mean = math.fsum(scores) / n
    variance = math.fsum((s - mean) ** 2 for s in scores) / (n - 1)
    low = mean - SIGMAS * math.sqrt(variance)
    high = mean + SIGMAS * math.sqrt(variance)
    if high == low:
        return [0.5] * n
    return [(s - low) / (high - low) for s in scores]


def distribution_based_score_fusion(
    rankings: Mapping[str, Sequence[BranchHit]],
    *,
    weights: Mapping[str, float] | None = None,
    limit: int | None = None,
) -> list[FusedHit]:
    """Fuse by summing each branch's distribution-normalised scores, best first."""
    return weighted_score_sum(rankings, distribution_normalise, weights=weights, limit=limit)
