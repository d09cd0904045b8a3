"""Per-query retrieval metrics, computed by ranx (Bassani, ECIR 2022), not hand-written.

Below both :mod:`hybrid_retriever.evaluation` (which reports runs) and
:mod:`hybrid_retriever.tuning` (which chooses among fusion configs): both score rankings
the same way, and neither needs the other to do it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

__all__ = ["DEFAULT_METRICS", "quiet_ranx", "score_queries"]

DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10")


def score_queries(
    qrels: Mapping[str, Mapping[str, int]],
    ranking: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, dict[str, float]]:
    """Each judged query's score on each metric (query id -> metric -> value), by ranx.

    Queries judged but missing from ``ranking`` are left out; a query that retrieved
    nothing scores 0.
    """
    judged = {q: dict(docs) for q, docs in qrels.items() if q in ranking}
    if not judged:
        return {}
    with quiet_ranx():
        from ranx import Qrels, Run, evaluate

        run = Run({q: dict(ranking[q]) or {"__none__": 0.0} for q in judged})
        evaluate(Qrels(judged), run, list(metrics), save_results_in_run=True)
    return {q: {m: float(run.scores[m][q]) for m in metrics} for q in judged}


@contextmanager
def quiet_ranx() -> Iterator[None]:
    """ranx's metrics with numba's compile-time notes hidden: the first call in a fresh
    numba cache warns of an "unsafe cast from uint64 to int64" in ranx's own code, which
    neither affects the scores nor is anything a user can act on."""
    from numba.core.errors import NumbaTypeSafetyWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        yield
