"""Reciprocal rank fusion (RRF).

Cormack, Clarke and Buettcher, "Reciprocal Rank Fusion outperforms Condorcet and
individual Rank Learning Methods", SIGIR 2009.
https://plg.uwaterloo.ca/~gvcormac/cormacksigir09-rrf.pdf

Paper convention, used throughout this package::

    score(d) = sum over branches b that returned d of  w_b / (rrf_k + rank_b(d))

with ranks counted from 1 and ``rrf_k = 60`` by default.

Qdrant's server-side RRF counts positions from 0 and uses ``1 / (k + position)``
with a default ``k = 2``. Since ``position = rank - 1``, the two agree exactly when
``qdrant_k = rrf_k + 1`` (see :func:`qdrant_rrf_k`): the paper's 60 is Qdrant's 61,
and Qdrant's default 2 is the paper's 1. With weights they differ: Qdrant divides
the rank by the weight (``1 / (rank / w + rrf_k)``) where the paper multiplies the
whole term, so weighted scores are only comparable within this package.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hybrid_retriever.errors import InvalidParameterError

DEFAULT_RRF_K = 60


@dataclass(frozen=True, slots=True)
class BranchHit:
    """One result of one branch: the point id and the branch's raw score."""

    id: str
    score: float


@dataclass(frozen=True, slots=True)
class FusedHit:
    """A fused result, with each branch's rank (from 1) and raw score, or None if absent."""

    id: str
    score: float
    ranks: dict[str, int | None]
    scores: dict[str, float | None]


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[BranchHit]],
    *,
    rrf_k: float = DEFAULT_RRF_K,
    weights: Mapping[str, float] | None = None,
    limit: int | None = None,
) -> list[FusedHit]:
    """Fuse ranked lists, best first.

    ``rankings`` maps a branch name to its hits in rank order. Ties keep
    first-seen order (branch order, then rank), deterministically, as
    qdrant-client's embedded RRF does (Qdrant's engine orders exact ties
    arbitrarily). A branch whose weight is 0 still reports its ranks but adds
    nothing to the score.
    """
    check_rrf_k(rrf_k)
    branch_weights = check_weights(weights, rankings.keys())
    fused_scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int | None]] = {}
    raw_scores: dict[str, dict[str, float | None]] = {}
    for branch, hits in rankings.items():
        weight = branch_weights[branch]
        for position, hit in enumerate(hits):
            if hit.id not in fused_scores:
                fused_scores[hit.id] = 0.0
                ranks[hit.id] = dict.fromkeys(rankings)
                raw_scores[hit.id] = dict.fromkeys(rankings)
            if ranks[hit.id][branch] is not None:
                continue  # a branch lists each point once; ignore repeats
            rank = position + 1
            fused_scores[hit.id] += weight / (rrf_k + rank)
            ranks[hit.id][branch] = rank
            raw_scores[hit.id][branch] = hit.score
    order = sorted(fused_scores, key=fused_scores.__getitem__, reverse=True)
    if limit is not None:
        order = order[:limit]
    return [
        FusedHit(id=i, score=fused_scores[i], ranks=ranks[i], scores=raw_scores[i]) for i in order
    ]


def qdrant_rrf_k(rrf_k: float) -> int:
    """Qdrant's RRF ``k`` that gives the same unweighted scores as the paper's ``rrf_k``."""
    check_rrf_k(rrf_k)
    if not float(rrf_k).is_integer():
        raise InvalidParameterError(
            f"rrf_k={rrf_k} has no Qdrant equivalent: Qdrant's RRF k is an integer. "
            "Use a whole number."
        )
    return int(rrf_k) + 1


def check_rrf_k(rrf_k: float) -> None:
    if isinstance(rrf_k, bool) or not isinstance(rrf_k, int | float):
        raise InvalidParameterError(f"rrf_k must be a number, not {type(rrf_k).__name__}.")
    if not math.isfinite(rrf_k) or rrf_k < 0:
        raise InvalidParameterError(
            f"rrf_k must be a finite number >= 0 (the paper uses 60), got {rrf_k}."
        )


def check_weights(weights: Mapping[str, float] | None, branches: Iterable[str]) -> dict[str, float]:
    """Validated per-branch weights; missing weights default to 1."""
    names = list(branches)
    if weights is None:
        return dict.fromkeys(names, 1.0)
    if not isinstance(weights, Mapping):
        raise InvalidParameterError(
            f"weights must be a mapping of branch name to weight, such as "
            f"{{'dense': 1.0, 'sparse': 0.5}}, not {type(weights).__name__}."
        )
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise InvalidParameterError(
            f"weights name unknown branches {unknown}; the branches are {names}."
        )
    resolved = dict.fromkeys(names, 1.0)
    for name, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise InvalidParameterError(
                f"weight for branch {name!r} must be a number, not {type(weight).__name__}."
            )
        if not math.isfinite(weight) or weight < 0:
            raise InvalidParameterError(
                f"weight for branch {name!r} must be finite and >= 0, got {weight}."
            )
        resolved[name] = float(weight)
    if names and not any(resolved.values()):
        raise InvalidParameterError("At least one branch weight must be greater than 0.")
    return resolved
