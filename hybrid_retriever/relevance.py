"""``_relevance``: a score in [0, 1] per result that means the same for every query.

A fused score is relative to its own result list (RRF ranks, or scores min-max scaled
per list), so the top hit of an off-topic query scores about as high as that of a good
one; a threshold on it drops nothing. The branches' raw scores are not relative: a dense
cosine means the same for every query, and a lexical score does once divided by a scale
of the query's own vector (a long query matches more terms, so it scores higher). This
module turns a hit's raw scores into one probability-like number:

    relevance = sigmoid(intercept + sum over branches b of  w_b * x_b)

with ``x_b`` the branch's evidence (:func:`branch_evidence`) and ``w_b >= 0``, so the
relevance rises with every branch's evidence. One model per set of branches searched
(dense only, dense + SPLADE, all three, ...), fitted by ``benchmarks/relevance_study.py``
to tell the top hits of a corpus' own judged queries from those of the other corpora's
queries (off-topic), leave one corpus out; ``docs/relevance.md`` has the protocol, which
was fixed before any score was looked at, and the per-corpus results.

What it learnt from: score normalisation for metasearch (Montague and Aslam, "Relevance
score normalization for metasearch", CIKM 2001) shows that per-list min-max scaling
destroys cross-query meaning; Platt scaling (Platt, 1999) and Manmatha et al.'s
score-distribution models map raw scores to probabilities with a logistic curve; and
langchain-qdrant's hybrid mode, which compares a ``score_threshold`` with raw RRF
scores, shows what goes wrong without it.

Pure logic: numbers in, numbers out; no engine, no encoder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.branches import ALL_BRANCHES, BM25, DENSE, SPARSE
from hybrid_retriever.fusion.rrf import BranchHit, FusedHit

RELEVANCE_KEY = "_relevance"
"""The metadata key of a result's relevance."""


class QueryScale(str, Enum):
    """What a lexical branch's score is divided by: a scale of the query's own vector."""

    RAW = "raw"
    """1: the score as the engine returns it."""
    L2 = "l2"
    """The query vector's L2 norm (for BM25, whose query weights are 1: sqrt(terms))."""
    SELF = "self"
    """The query vector dotted with itself (for BM25: the number of terms)."""

    def of(self, values: Sequence[float]) -> float:
        """The scale of a query vector with these values (0 when it has none)."""
        if self is QueryScale.RAW:
            return 1.0 if values else 0.0
        self_dot = math.fsum(v * v for v in values)
        return math.sqrt(self_dot) if self is QueryScale.L2 else self_dot


@dataclass(frozen=True, slots=True)
class RelevanceModel:
    """One logistic model: the intercept and a weight (>= 0) per branch's evidence."""

    intercept: float
    weights: Mapping[str, float]

    def __call__(self, evidence: Mapping[str, float]) -> float:
        """The relevance of a hit with this evidence (one value per branch of the model)."""
        z = self.intercept + math.fsum(w * evidence[b] for b, w in self.weights.items())
        return _sigmoid(z)


# -- what benchmarks/relevance_study.py chose (benchmarks/results/relevance_study.json) -----

SCALES: Mapping[str, QueryScale] = {SPARSE: QueryScale.L2, BM25: QueryScale.L2}
"""Each lexical branch's query scale (the study's inner leave-one-corpus-out chose L2 for
both: a SPLADE score over the query vector's norm, a BM25 score over sqrt(terms))."""

MODELS: Mapping[frozenset[str], RelevanceModel] = {
    frozenset(weights): RelevanceModel(intercept, weights)
    for intercept, weights in (
        (-5.4018, {DENSE: 12.2302}),
        (-5.4081, {SPARSE: 1.9913}),
        (-3.9259, {BM25: 0.6224}),
        (-5.4903, {DENSE: 5.9881, SPARSE: 1.2264}),
        (-5.6234, {DENSE: 8.7059, BM25: 0.375}),
        (-5.5006, {SPARSE: 1.6055, BM25: 0.2374}),
        (-5.6485, {DENSE: 6.535, SPARSE: 0.7907, BM25: 0.1997}),
    )
}
"""The model for each set of branches searched, fitted on the six corpora of the suite
(``shipped`` in ``benchmarks/results/relevance_study.json``)."""

RECOMMENDED_THRESHOLD = 0.62
"""The study's threshold: keep results whose ``_relevance`` is at least this. Out of
sample, pooled over the suite, it keeps about 89 % of queries whose top hit is judged
relevant and drops about 90 % of off-topic ones (``docs/relevance.md``)."""


def branch_evidence(branch: str, score: float, query_scale: float) -> float:
    """A branch's raw score made comparable across queries: the dense cosine as it is,
    a lexical score divided by the query's scale (0 for a query with no terms)."""
    if branch == DENSE:
        return score
    return score / query_scale if query_scale > 0 else 0.0


def query_scales(vectors: Mapping[str, Any]) -> dict[str, float]:
    """Each searched branch's query scale, from the query vectors (a dense one: 1; a
    sparse one: anything with ``values``)."""
    return {
        branch: 1.0 if branch == DENSE else SCALES[branch].of(list(vector.values))
        for branch, vector in vectors.items()
    }


def floors(rankings: Mapping[str, Sequence[BranchHit]]) -> dict[str, float]:
    """Per branch searched, the score a hit it did not return has at most: its lowest
    returned score (0 for a branch that returned nothing)."""
    return {branch: (hits[-1].score if hits else 0.0) for branch, hits in rankings.items()}


def hit_evidence(
    hit: FusedHit, scales: Mapping[str, float], branch_floors: Mapping[str, float]
) -> dict[str, float]:
    """The evidence of one fused hit, for each branch searched (the keys of ``scales``)."""
    evidence = {}
    for branch in scales:
        score = hit.scores.get(branch)
        raw = branch_floors.get(branch, 0.0) if score is None else score
        evidence[branch] = branch_evidence(branch, raw, scales[branch])
    return evidence


def model_for(branches: Sequence[str] | frozenset[str]) -> RelevanceModel:
    """The model for this set of branches searched."""
    key = frozenset(branches)
    model = MODELS.get(key)
    if model is None:
        raise InvalidParameterError(
            f"No relevance model for the branches {sorted(key)}; the branches are "
            f"{list(ALL_BRANCHES)}."
        )
    return model


def relevance(
    hit: FusedHit, scales: Mapping[str, float], branch_floors: Mapping[str, float]
) -> float:
    """The relevance of one fused hit of a search over the branches in ``scales``."""
    return model_for(frozenset(scales))(hit_evidence(hit, scales, branch_floors))


def check_score_threshold(value: Any) -> float | None:
    """``score_threshold``: None (keep everything) or a number in [0, 1]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameterError(
            f"score_threshold must be a number in [0, 1] (a minimum _relevance) or None, not "
            f"{type(value).__name__}; the recommended value is {RECOMMENDED_THRESHOLD}."
        )
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise InvalidParameterError(
            f"score_threshold={value!r} is outside [0, 1]; it is compared with _relevance, "
            f"which lies in [0, 1]. The recommended value is {RECOMMENDED_THRESHOLD}."
        )
    return float(value)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
