"""Choose the fusion method and its parameters from labelled queries, by cross-validation.

Every candidate (:func:`candidate_configs`: each method with its weights, RRF k,
convex alpha and prefetch depth) is scored per query from **one** search per query:
each branch is searched once at the deepest prefetch, and shallower prefetch depths
are the first hits of those lists. So ``tune`` costs one query round trip per query,
whatever the size of the grid.

Cross-validation guards against choosing noise: the queries are split into
``folds`` parts; for each part, the candidate with the best mean nDCG on the *other*
parts is scored on it. The mean of those held-out scores estimates what the tuning
procedure gives on unseen queries, and their spread says how much to trust it. The
config that is saved is the best one on all queries.

    rankings = search_branches(retriever, dataset.queries)
    result = tune(rankings, dataset.qrels, queries=dataset.queries)
    result.config.save("fusion.json")
    retriever = HybridRetriever(**FusionConfig.load("fusion.json").retriever_kwargs(), ...)
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hybrid_retriever.branch_lists import (
    Rankings,
    hit_id,
    retriever_branches,
    search_branches,
    stored_hit_id,
)
from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.branches import ALL_BRANCHES, BM25, DENSE, SPARSE, TWO_BRANCHES
from hybrid_retriever.fusion.config import FusionConfig
from hybrid_retriever.fusion.methods import DEFAULT_FUSION, FusionMethod
from hybrid_retriever.scoring import score_queries

__all__ = [
    "CONVEX_ALPHAS",
    "DEFAULT_FOLDS",
    "DEFAULT_PREFETCH_GRID",
    "RRF_KS",
    "TRIPLE_WEIGHT_LEVELS",
    "WEIGHT_RATIOS",
    "FoldResult",
    "Rankings",
    "TuneResult",
    "candidate_configs",
    "cross_validate",
    "fused_ids",
    "hit_id",
    "per_query_ndcg",
    "retriever_branches",
    "search_branches",
    "stored_hit_id",
    "tune",
    "untuned_configs",
]

DEFAULT_FOLDS = 5
DEFAULT_PREFETCH_GRID = (20, 50, 100)
WEIGHT_RATIOS = (0.0, 1 / 3, 0.5, 1.0, 2.0, 3.0, math.inf)
"""Weight ratios tried between two branches (dense : sparse with the original two); 0 and
inf are the single branches."""
TRIPLE_WEIGHT_LEVELS = (1.0, 2.0)
"""With three branches, every branch weighted one of these (each direction once) is a
candidate too, beside each pair at :data:`WEIGHT_RATIOS`."""
RRF_KS = (5.0, 20.0, 60.0)
CONVEX_ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))
"""Weight of the first branch in a convex combination of two (0 = the other alone, 1 = it
alone); with three branches, every weighting in steps of 0.1 that uses two or three."""


def candidate_configs(
    prefetch_grid: Sequence[int] = DEFAULT_PREFETCH_GRID,
    *,
    branches: Sequence[str] = TWO_BRANCHES,
) -> list[FusionConfig]:
    """The grid ``tune`` searches: every method, its parameters, every prefetch depth.

    The single branches are candidates too (weight 0 on the others), so tuning can
    conclude that fusion does not pay on a corpus. ``branches`` are the branches the
    rankings have: dense and SPLADE, or those and BM25. With three, every candidate names
    all three weights (a weight left out would count as 1), and the candidates of each
    pair of branches are among them, so tuning can also conclude that a branch does not pay.
    """
    named = _check_branches(branches)
    configs: list[FusionConfig] = []
    for prefetch_k in prefetch_grid:
        for weights in _single_branches(named):
            configs.append(FusionConfig(FusionMethod.RRF, weights, prefetch_k=prefetch_k))
        for weights in _ratio_weights(named):
            for rrf_k in RRF_KS:
                configs.append(
                    FusionConfig(FusionMethod.RRF, weights, rrf_k, prefetch_k=prefetch_k)
                )
            for method in (FusionMethod.DBSF, FusionMethod.ADAPTIVE):
                configs.append(FusionConfig(method, weights, prefetch_k=prefetch_k))
        for weights in _convex_weights(named):
            configs.append(FusionConfig(FusionMethod.CONVEX, weights, prefetch_k=prefetch_k))
    return configs


def _check_branches(branches: Sequence[str]) -> tuple[str, ...]:
    named = tuple(b for b in ALL_BRANCHES if b in branches)
    if set(branches) - set(ALL_BRANCHES) or named not in (TWO_BRANCHES, ALL_BRANCHES):
        raise InvalidParameterError(
            f"branches must be {list(TWO_BRANCHES)} or {list(ALL_BRANCHES)}, got {list(branches)}."
        )
    return named


def _pairs(named: tuple[str, ...]) -> list[tuple[str, str]]:
    """The pairs of branches, dense and SPLADE first (the only pair of two branches)."""
    return list(itertools.combinations(named, 2))


def _single_branches(named: tuple[str, ...]) -> list[dict[str, float]]:
    """Each branch alone: SPLADE, dense, then BM25 (the two-branch order of old)."""
    return [
        {b: (1.0 if b == alone else 0.0) for b in named}
        for alone in (SPARSE, DENSE, BM25)
        if alone in named
    ]


def _ratio_weights(named: tuple[str, ...]) -> list[dict[str, float]]:
    """Weights of two branches at each ratio of :data:`WEIGHT_RATIOS` (third at 0), then,
    with three branches, every mix of :data:`TRIPLE_WEIGHT_LEVELS`, each direction once."""
    ratios = [r for r in WEIGHT_RATIOS if 0 < r < math.inf]
    found = [
        {**dict.fromkeys(named, 0.0), **_ratio(ratio, first, second)}
        for first, second in _pairs(named)
        for ratio in ratios
    ]
    if len(named) == 3:
        seen: set[tuple[float, ...]] = set()
        for levels in itertools.product(TRIPLE_WEIGHT_LEVELS, repeat=3):
            direction = tuple(round(w / min(levels), 4) for w in levels)
            if direction not in seen:
                seen.add(direction)
                found.append(dict(zip(named, direction, strict=True)))
    return found


def _convex_weights(named: tuple[str, ...]) -> list[dict[str, float]]:
    """Convex weights that sum to 1 in steps of 0.1 and use at least two branches: each
    pair's interior alphas, then (three branches) every mix of all three."""
    interior = CONVEX_ALPHAS[1:-1]
    found = [
        {**dict.fromkeys(named, 0.0), first: alpha, second: round(1 - alpha, 1)}
        for first, second in _pairs(named)
        for alpha in interior
    ]
    if len(named) == 3:
        for a, b in itertools.product(interior, repeat=2):
            c = round(1 - a - b, 1)
            if c >= 0.1:
                found.append(dict(zip(named, (a, b, c), strict=True)))
    return found


def _ratio(ratio: float, first: str = DENSE, second: str = SPARSE) -> dict[str, float]:
    """Weights with first : second = ``ratio`` (0: second only, inf: first only)."""
    if ratio == math.inf:
        return {first: 1.0, second: 0.0}
    if ratio >= 1:
        return {first: round(ratio, 4), second: 1.0}
    return {first: round(ratio, 4) if ratio else 0.0, second: 1.0}


# -- scoring candidates --------------------------------------------------------------------------


def fused_ids(rankings: Rankings, config: FusionConfig, *, query: str, k: int) -> list[str]:
    """The ids ``config`` ranks first for ``query``, from its lists searched at least
    ``config.prefetch_k`` deep."""
    return [hit.id for hit in config.fuse(rankings, query=query, limit=k)]


def per_query_ndcg(
    configs: Sequence[FusionConfig],
    rankings: Mapping[str, Rankings],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    queries: Mapping[str, str],
    k: int = 10,
    ignore_identical_ids: bool = False,
) -> list[dict[str, float]]:
    """nDCG@k of every config on every judged query (config index -> query id -> score).

    ``queries`` are the query texts by id: the default weights depend on them."""
    metric = f"ndcg@{k}"
    judged = [q for q in rankings if q in qrels]
    table = []
    for config in configs:
        ranking = {}
        for query in judged:
            ids = fused_ids(
                rankings[query], config, query=queries[query], k=k + int(ignore_identical_ids)
            )
            if ignore_identical_ids:
                ids = [i for i in ids if i != query][:k]
            ranking[query] = {doc: -float(rank) for rank, doc in enumerate(ids, start=1)}
        scores = score_queries(qrels, ranking, [metric])
        table.append({q: s[metric] for q, s in scores.items()})
    return table


# -- cross-validation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FoldResult:
    """One fold: the config chosen on the other folds, and its score on this one."""

    chosen: FusionConfig
    train_ndcg: float
    held_out_ndcg: float
    num_queries: int


@dataclass(frozen=True)
class TuneResult:
    """What :func:`tune` found."""

    config: FusionConfig
    """The best candidate on all queries: the one to use."""
    ndcg: float
    """Its mean nDCG@k on all tuning queries (optimistic: it was chosen on them)."""
    folds: list[FoldResult]
    baselines: dict[str, float]
    """Mean nDCG@k on all tuning queries of the untuned runs: dense, sparse, default."""
    top: list[tuple[FusionConfig, float]]
    """The best few candidates on all queries, best first."""
    k: int = 10

    @property
    def held_out_scores(self) -> list[float]:
        return [f.held_out_ndcg for f in self.folds]

    @property
    def held_out_mean(self) -> float:
        """Cross-validated estimate of nDCG@k on unseen queries."""
        return math.fsum(self.held_out_scores) / len(self.folds)

    @property
    def held_out_std(self) -> float:
        """Spread of the held-out fold scores (sample standard deviation)."""
        scores = self.held_out_scores
        if len(scores) < 2:
            return 0.0
        mean = self.held_out_mean
        return math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / (len(scores) - 1))

    def report(self) -> str:
        """A few lines for people: the choice, the folds, the spread."""
        metric = f"nDCG@{self.k}"
        lines = [
            f"chosen: {self.config.describe()}  ({metric} {self.ndcg:.4f} on all tuning queries)"
        ]
        for n, fold in enumerate(self.folds, start=1):
            lines.append(
                f"  fold {n}: {fold.num_queries:>4} held-out queries  held-out {metric} "
                f"{fold.held_out_ndcg:.4f}  (train {fold.train_ndcg:.4f})  "
                f"chose {fold.chosen.describe()}"
            )
        scores = self.held_out_scores
        distinct = len({f.chosen for f in self.folds})
        lines.append(
            f"held-out {metric}: mean {self.held_out_mean:.4f}, std {self.held_out_std:.4f}, "
            f"min {min(scores):.4f}, max {max(scores):.4f}; {distinct} distinct choice"
            f"{'s' if distinct != 1 else ''} across {len(self.folds)} folds"
        )
        lines.append(
            "untuned on the same queries: "
            + ", ".join(f"{name} {value:.4f}" for name, value in self.baselines.items())
        )
        return "\n".join(lines)


def cross_validate(
    table: Sequence[Mapping[str, float]],
    configs: Sequence[FusionConfig],
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> list[FoldResult]:
    """For each fold, the best config on the other folds and its held-out score."""
    queries = sorted(table[0]) if table else []
    if folds < 2:
        raise InvalidParameterError(f"folds must be >= 2, got {folds}.")
    if len(queries) < folds:
        raise InvalidParameterError(
            f"{len(queries)} judged queries cannot be split into {folds} folds; use fewer "
            "folds or a split with more judged queries."
        )
    random.Random(seed).shuffle(queries)
    parts = [queries[i::folds] for i in range(folds)]
    results = []
    for held_out in parts:
        held = set(held_out)
        train = [q for q in queries if q not in held]
        best = _best(table, train)
        results.append(
            FoldResult(
                chosen=configs[best],
                train_ndcg=_mean(table[best], train),
                held_out_ndcg=_mean(table[best], held_out),
                num_queries=len(held_out),
            )
        )
    return results


def _mean(scores: Mapping[str, float], queries: Iterable[str]) -> float:
    values = [scores[q] for q in queries]
    return math.fsum(values) / len(values) if values else 0.0


def _best(table: Sequence[Mapping[str, float]], queries: Sequence[str]) -> int:
    """Index of the best config on ``queries``; ties go to the earlier (simpler) candidate."""
    means = [_mean(scores, queries) for scores in table]
    return max(range(len(means)), key=lambda i: (means[i], -i))


def tune(
    rankings: Mapping[str, Rankings],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    queries: Mapping[str, str],
    configs: Sequence[FusionConfig] | None = None,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    k: int = 10,
    ignore_identical_ids: bool = False,
    top: int = 5,
) -> TuneResult:
    """Pick the config with the best nDCG@k, and cross-validate that choice.

    ``rankings`` are each judged query's branch lists (see :func:`search_branches`),
    at least as deep as the deepest ``prefetch_k`` among ``configs``; ``queries`` their
    texts by id. ``configs`` default to :func:`candidate_configs` for the branches the
    rankings have (three-branch weightings when they have BM25).
    """
    configs = (
        list(configs) if configs is not None else candidate_configs(branches=_branches_of(rankings))
    )
    if not configs:
        raise InvalidParameterError("configs is empty; give at least one FusionConfig.")
    judged = [q for q in rankings if q in qrels]
    if not judged:
        raise InvalidParameterError(
            "None of the queries has relevance judgements; check that the qrels split "
            "belongs to these queries."
        )
    baselines = untuned_configs(_branches_of(rankings))
    everything = [*configs, *baselines.values()]
    table = per_query_ndcg(
        everything,
        {q: rankings[q] for q in judged},
        qrels,
        queries=queries,
        k=k,
        ignore_identical_ids=ignore_identical_ids,
    )
    candidates = table[: len(configs)]
    fold_results = cross_validate(candidates, configs, folds=folds, seed=seed)
    means = [_mean(scores, judged) for scores in candidates]
    order = sorted(range(len(configs)), key=lambda i: (-means[i], i))
    best = order[0]
    return TuneResult(
        config=configs[best],
        ndcg=means[best],
        folds=fold_results,
        baselines={
            name: _mean(scores, judged)
            for name, scores in zip(baselines, table[len(configs) :], strict=True)
        },
        top=[(configs[i], means[i]) for i in order[:top]],
        k=k,
    )


def untuned_configs(branches: Sequence[str] = TWO_BRANCHES) -> dict[str, FusionConfig]:
    """What ``tune`` compares its choice with: each branch alone, and the default fusion
    (weights by query length over all ``branches``, as a retriever with them searches)."""
    named = _check_branches(branches)
    alone = {
        branch: FusionConfig(FusionMethod.RRF, {b: float(b == branch) for b in named})
        for branch in named
    }
    return {**alone, f"{DEFAULT_FUSION.value} (default)": FusionConfig()}


def _branches_of(rankings: Mapping[str, Rankings]) -> tuple[str, ...]:
    """The branches the rankings were searched with: BM25 when any query has its list."""
    has_bm25 = any(BM25 in lists for lists in rankings.values())
    return ALL_BRANCHES if has_bm25 else TWO_BRANCHES
