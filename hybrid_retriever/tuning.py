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

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.config import FusionConfig
from hybrid_retriever.fusion.methods import DEFAULT_FUSION, FusionMethod
from hybrid_retriever.fusion.rrf import BranchHit
from hybrid_retriever.search_options import BRANCHES, DENSE, SPARSE, check_k

if TYPE_CHECKING:
    from hybrid_retriever.retriever import HybridRetriever

Rankings = dict[str, list[BranchHit]]
"""Branch name -> hits in rank order; hit ids are the dataset's document ids."""

DEFAULT_FOLDS = 5
DEFAULT_PREFETCH_GRID = (20, 50, 100)
WEIGHT_RATIOS = (0.0, 1 / 3, 0.5, 1.0, 2.0, 3.0, math.inf)
"""dense : sparse weight ratios tried; 0 and inf are the single branches."""
RRF_KS = (5.0, 20.0, 60.0)
CONVEX_ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))
"""Weight of the dense branch in the convex combination (0 = sparse only, 1 = dense only)."""


def candidate_configs(
    prefetch_grid: Sequence[int] = DEFAULT_PREFETCH_GRID,
) -> list[FusionConfig]:
    """The grid ``tune`` searches: every method, its parameters, every prefetch depth.

    The single branches are candidates too (weight 0 on the other), so tuning can
    conclude that fusion does not pay on a corpus.
    """
    ratios = [r for r in WEIGHT_RATIOS if 0 < r < math.inf]
    configs: list[FusionConfig] = []
    for prefetch_k in prefetch_grid:
        configs.append(FusionConfig(FusionMethod.RRF, _ratio(0.0), prefetch_k=prefetch_k))
        configs.append(FusionConfig(FusionMethod.RRF, _ratio(math.inf), prefetch_k=prefetch_k))
        for ratio in ratios:
            for rrf_k in RRF_KS:
                configs.append(
                    FusionConfig(FusionMethod.RRF, _ratio(ratio), rrf_k, prefetch_k=prefetch_k)
                )
            for method in (FusionMethod.DBSF, FusionMethod.ADAPTIVE):
                configs.append(FusionConfig(method, _ratio(ratio), prefetch_k=prefetch_k))
        for alpha in CONVEX_ALPHAS[1:-1]:
            weights = {DENSE: alpha, SPARSE: round(1 - alpha, 1)}
            configs.append(FusionConfig(FusionMethod.CONVEX, weights, prefetch_k=prefetch_k))
    return configs


def _ratio(ratio: float) -> dict[str, float]:
    """Weights with dense : sparse = ``ratio`` (0: sparse only, inf: dense only)."""
    if ratio == math.inf:
        return {DENSE: 1.0, SPARSE: 0.0}
    if ratio >= 1:
        return {DENSE: round(ratio, 4), SPARSE: 1.0}
    return {DENSE: round(ratio, 4) if ratio else 0.0, SPARSE: 1.0}


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
    from hybrid_retriever.evaluation import score_queries

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
    texts by id.
    """
    configs = list(configs) if configs is not None else candidate_configs()
    if not configs:
        raise InvalidParameterError("configs is empty; give at least one FusionConfig.")
    judged = [q for q in rankings if q in qrels]
    if not judged:
        raise InvalidParameterError(
            "None of the queries has relevance judgements; check that the qrels split "
            "belongs to these queries."
        )
    baselines = {
        "dense": FusionConfig(FusionMethod.RRF, _ratio(math.inf)),
        "sparse": FusionConfig(FusionMethod.RRF, _ratio(0.0)),
        f"{DEFAULT_FUSION.value} (default)": FusionConfig(),
    }
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


# -- searching -----------------------------------------------------------------------------------


def search_branches(
    retriever: HybridRetriever,
    queries: Mapping[str, str],
    *,
    depth: int = max(DEFAULT_PREFETCH_GRID),
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
    with_doc_ids: bool = True,
) -> dict[str, Rankings]:
    """Each query's branch lists, ``depth`` deep, with the dataset's document ids.

    One batched round trip per query, exactly the search ``invoke`` makes (same
    encoders, vector names and filter), before fusion. ``with_doc_ids=False`` keeps
    point ids and fetches no payloads, which in-process engines decode slowly: for
    callers that map the few ids they keep afterwards.
    """
    from hybrid_retriever.storage.base import BranchQuery

    check_k(depth, "depth")
    if retriever.storage.get_layout(retriever.collection_name) is None:
        raise InvalidParameterError(
            f"Collection {retriever.collection_name!r} does not exist; index the dataset first."
        )
    names = {DENSE: retriever.dense_vector_name, SPARSE: retriever.sparse_vector_name}
    both = retriever._options({"weights": dict.fromkeys(BRANCHES, 1.0), "k": 1})
    items: Iterable[tuple[str, str]] = queries.items()
    if progress is not None:
        items = progress(items)
    rankings: dict[str, Rankings] = {}
    for query_id, text in items:
        # Encoded as invoke encodes: both encoders at once, on the retriever's own thread.
        encoded = retriever._encode_queries([text], both)
        vectors = (encoded[DENSE][0], encoded[SPARSE][0])
        branch_queries = {
            branch: BranchQuery(
                vector_name=names[branch], vector=vector, limit=depth, with_payload=with_doc_ids
            )
            for branch, vector in zip((DENSE, SPARSE), vectors, strict=True)
            if len(vector) > 0
        }
        results = retriever.storage.search(
            retriever.collection_name, list(branch_queries.values()), retriever.filter
        )
        found = dict(zip(branch_queries, results, strict=True))
        rankings[query_id] = {
            branch: _best_per_id(
                BranchHit(id=stored_hit_id(p.id, p.payload or {}), score=p.score)
                for p in found.get(branch, [])
            )
            for branch in BRANCHES
        }
    return rankings


def _best_per_id(hits: Iterable[BranchHit]) -> list[BranchHit]:
    """The first (best) hit of each id, in order: a document's chunks count as its best."""
    best: dict[str, BranchHit] = {}
    for hit in hits:
        best.setdefault(hit.id, hit)
    return list(best.values())


def hit_id(document_id: str, metadata: Mapping[str, Any]) -> str:
    """The id a hit is judged by: for a chunk, the id of the document it was cut from
    (``metadata["source_id"]``, see :mod:`hybrid_retriever.chunking`); else the source's
    own document id (``metadata["doc_id"]``, as the CLI's sources store it) where there is
    one, else the document's id (what ``invoke`` returns as ``Document.id``)."""
    from hybrid_retriever.chunking import SOURCE_ID_KEY
    from hybrid_retriever.metadata_keys import DOC_ID_KEY

    return str(metadata.get(SOURCE_ID_KEY, metadata.get(DOC_ID_KEY, document_id)))


def stored_hit_id(point_id: str, payload: Mapping[str, Any]) -> str:
    """:func:`hit_id` of a stored point, from its payload."""
    from hybrid_retriever.collection import METADATA_KEY
    from hybrid_retriever.documents import document_id

    return hit_id(document_id(point_id, payload), payload.get(METADATA_KEY) or {})
