"""The fusion methods the retriever offers, and one entry point that dispatches to them.

Each method lives in its own module of this package and takes the same input:
the ranked hits of each branch (with their raw scores), the per-branch weights
and the number of results wanted. This module only names them and routes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum

from hybrid_retriever.fusion.rrf import DEFAULT_RRF_K, BranchHit, FusedHit, reciprocal_rank_fusion


class FusionMethod(str, Enum):
    """How the two branches' ranked lists become one."""

    RRF = "rrf"
    """Reciprocal rank fusion, paper convention (see ``fusion.rrf``)."""


DEFAULT_FUSION = FusionMethod.RRF


def fuse(
    rankings: Mapping[str, Sequence[BranchHit]],
    *,
    method: FusionMethod = DEFAULT_FUSION,
    weights: Mapping[str, float] | None = None,
    rrf_k: float = DEFAULT_RRF_K,
    limit: int | None = None,
) -> list[FusedHit]:
    """Fuse ``rankings`` (branch name -> hits in rank order) with ``method``, best first."""
    if method is FusionMethod.RRF:
        return reciprocal_rank_fusion(rankings, rrf_k=rrf_k, weights=weights, limit=limit)
    raise AssertionError(f"unhandled fusion method {method!r}")  # pragma: no cover
