"""The fusion methods the retriever offers, and one entry point that dispatches to them.

Each method lives in its own module of this package and takes the same input:
the ranked hits of each branch (with their raw scores), the per-branch weights
and the number of results wanted. This module only names them and routes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Any

from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.adaptive import adaptive_fusion
from hybrid_retriever.fusion.branches import TWO_BRANCHES
from hybrid_retriever.fusion.convex import convex_combination
from hybrid_retriever.fusion.dbsf import distribution_based_score_fusion
from hybrid_retriever.fusion.query_length import query_length_weights
from hybrid_retriever.fusion.rrf import DEFAULT_RRF_K, BranchHit, FusedHit, reciprocal_rank_fusion


class FusionMethod(str, Enum):
    """How the branches' ranked lists become one (any of dense, SPLADE and BM25)."""

    RRF = "rrf"
    """Reciprocal rank fusion, paper convention (see ``fusion.rrf``)."""
    DBSF = "dbsf"
    """Qdrant's distribution-based score fusion (see ``fusion.dbsf``)."""
    CONVEX = "convex"
    """Convex combination of min-max normalised scores; weights are alphas (``fusion.convex``)."""
    ADAPTIVE = "adaptive"
    """Convex, with per-query weights from each branch's own scores (``fusion.adaptive``)."""


DEFAULT_FUSION = FusionMethod.CONVEX
"""The method a retriever uses when the caller names none, with :func:`default_weights`.
Chosen by ``benchmarks/fusion_study.py`` over six real corpora, by the best worst case
across corpora, each corpus also left out in turn (see docs/fusion.md)."""


def default_weights(
    method: FusionMethod, query: str, *, branches: Iterable[str] = TWO_BRANCHES
) -> dict[str, float] | None:
    """The weights ``method`` uses for ``query`` over ``branches`` when the caller sets
    none: for the default method, a dense share that grows with the query's length
    (:func:`~hybrid_retriever.fusion.query_length.query_length_weights`, which also splits
    the rest between SPLADE and BM25); None (equal) for the others, which keep their
    papers' forms."""
    if method is not DEFAULT_FUSION:
        return None
    return query_length_weights(query, branches=branches)


def check_fusion(value: Any) -> FusionMethod:
    try:
        return FusionMethod(value)
    except ValueError:
        raise InvalidParameterError(
            f"fusion must be one of {[m.value for m in FusionMethod]}, got {value!r}."
        ) from None


def fuse(
    rankings: Mapping[str, Sequence[BranchHit]],
    *,
    method: FusionMethod = DEFAULT_FUSION,
    weights: Mapping[str, float] | None = None,
    rrf_k: float = DEFAULT_RRF_K,
    limit: int | None = None,
) -> list[FusedHit]:
    """Fuse ``rankings`` (branch name -> hits in rank order) with ``method``, best first.

    ``rrf_k`` only matters to RRF; ``weights`` scale each branch's contribution in
    every method (for ``convex`` they are rescaled to sum to 1).
    """
    if method is FusionMethod.RRF:
        return reciprocal_rank_fusion(rankings, rrf_k=rrf_k, weights=weights, limit=limit)
    if method is FusionMethod.DBSF:
        return distribution_based_score_fusion(rankings, weights=weights, limit=limit)
    if method is FusionMethod.CONVEX:
        return convex_combination(rankings, weights=weights, limit=limit)
    if method is FusionMethod.ADAPTIVE:
        return adaptive_fusion(rankings, weights=weights, limit=limit)
    raise AssertionError(f"unhandled fusion method {method!r}")  # pragma: no cover
