"""Maximal marginal relevance: a ranking that trades relevance for diversity.

Carbonell and Goldstein's greedy selection, with LangChain's meanings: from the
candidates, pick first the most relevant, then each time the one that maximises
``lambda_mult * relevance - (1 - lambda_mult) * (its highest similarity to a pick)``.
``lambda_mult=1`` is the relevance order, ``0`` diversity alone.

The retriever feeds it the hybrid evidence (:func:`rescaled_relevance` of the fused
scores, so the query's side is the hybrid ranking rather than the dense one alone) and
the cosine similarities of the candidates' stored dense vectors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.rrf import FusedHit

DEFAULT_FETCH_K = 20
"""Candidates MMR chooses from, as LangChain's default."""
DEFAULT_LAMBDA_MULT = 0.5
"""LangChain's default balance between relevance (1) and diversity (0)."""


def maximal_marginal_relevance(
    relevance: Sequence[float],
    similarity: Sequence[Sequence[float]],
    *,
    lambda_mult: float,
    limit: int,
) -> list[int]:
    """The indices of up to ``limit`` candidates, in the order picked.

    ``relevance[i]`` is candidate i's relevance to the query, ``similarity[i][j]`` that
    of candidates i and j. Ties go to the earlier candidate, so with ``lambda_mult=1``
    (or a single pick) the result is the relevance order, stable.
    """
    count = len(relevance)
    picked: list[int] = []
    # Each candidate's highest similarity to a pick so far (none yet: no penalty).
    redundancy = [0.0] * count
    remaining = list(range(count))
    while remaining and len(picked) < limit:
        if picked:
            best = max(
                remaining,
                key=lambda i: (
                    lambda_mult * relevance[i] - (1.0 - lambda_mult) * redundancy[i],
                    -i,
                ),
            )
        else:  # the first pick is the most relevant, whatever the balance
            best = max(remaining, key=lambda i: (relevance[i], -i))
        picked.append(best)
        remaining.remove(best)
        for i in remaining:
            redundancy[i] = max(redundancy[i], similarity[i][best])
    return picked


def mmr_order(
    hits: Sequence[FusedHit],
    dense: Mapping[str, Any],
    *,
    lambda_mult: float,
    limit: int,
) -> list[FusedHit]:
    """Up to ``limit`` of ``hits`` (a fused ranking, best first) in MMR's order, from
    their fused scores and their stored dense vectors ``dense`` (by point id); a hit
    without one (deleted since the search) is left out."""
    kept = [hit for hit in hits if dense.get(hit.id) is not None]
    order = maximal_marginal_relevance(
        rescaled_relevance([hit.score for hit in kept]),
        cosine_matrix([dense[hit.id] for hit in kept]),
        lambda_mult=lambda_mult,
        limit=limit,
    )
    return [kept[i] for i in order]


def rescaled_relevance(scores: Sequence[float]) -> list[float]:
    """Fused scores mapped onto [0, 1] over the candidates (best 1, worst 0; all 1 when
    equal), so that they weigh against cosine similarities on a comparable scale."""
    if not scores:
        return []
    high, low = max(scores), min(scores)
    if high == low:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def cosine_matrix(vectors: Sequence[Sequence[float]]) -> list[list[float]]:
    """Pairwise cosine similarities (a zero vector is similar to nothing)."""
    import numpy as np

    matrix: Any = np.asarray(vectors, dtype=np.float64)
    if matrix.size == 0:
        return []
    norms = np.linalg.norm(matrix, axis=1)
    norms[norms == 0] = 1.0
    unit = matrix / norms[:, None]
    similarities: list[list[float]] = (unit @ unit.T).tolist()
    return similarities


def check_lambda_mult(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidParameterError(
            f"lambda_mult must be a number from 0 (diversity only) to 1 (relevance only), "
            f"got {value!r}."
        )
    return float(value)
