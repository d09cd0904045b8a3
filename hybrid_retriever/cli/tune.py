"""``hybrid-retriever tune``: choose the fusion method and parameters on labelled queries.

Indexes the BEIR dataset (resumably, like ``eval``), with dense and SPLADE branches and,
where the retriever has one, BM25 (``--bm25`` / ``--no-bm25``; by default, as
``HybridRetriever`` decides for the collection), searches each judged query of
``--split`` once (all its branches in one request), scores every candidate of
:func:`~hybrid_retriever.tuning.candidate_configs` for those branches from those lists,
and cross-validates the choice (see :mod:`hybrid_retriever.tuning`).
Prints the choice, each fold's held-out nDCG and their spread, and saves the config
(``--out``, default ``fusion.json``), which ``search --fusion-config fusion.json`` and
``HybridRetriever(..., fusion_config="fusion.json")`` load. The dataset is indexed where
the other commands keep their data (``./qdrant_data`` by default), into the collection
named after it, so that ``search --collection NAME`` finds it afterwards.

``--test-split`` also scores the chosen config on another split, for reporting only:
it is never used to choose.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hybrid_retriever.cli.common import (
    add_dataset_options,
    collection_name,
    positive_int,
    retriever_arguments,
)
from hybrid_retriever.errors import InvalidParameterError

DEFAULT_OUT = Path("fusion.json")
LOAD_HINT = (
    "Search with it: hybrid-retriever search QUERY --collection {collection} "
    "--fusion-config {out}; in Python: HybridRetriever(..., fusion_config={out_repr})."
)


def add_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tune",
        parents=parents,
        help="choose the fusion method and parameters on a BEIR split, by cross-validation",
        description=(
            "Index a BEIR dataset, then pick the fusion method and its parameters (weights, "
            "RRF k, convex alpha, prefetch depth) with the best cross-validated nDCG@k on the "
            "judged queries of --split. Prints each fold's held-out score and saves the "
            "config to --out; load it with 'hybrid-retriever search ... --fusion-config FILE' "
            "or, in Python, HybridRetriever(..., fusion_config=FILE)."
        ),
    )
    parser.add_argument(
        "dataset", type=Path, metavar="DATASET", help="BEIR folder: corpus, queries, qrels/"
    )
    parser.add_argument(
        "--split", default="train", help="qrels split to tune on (default: %(default)s)"
    )
    parser.add_argument(
        "--test-split",
        metavar="SPLIT",
        help="also report the chosen config on this split (never used to choose)",
    )
    parser.add_argument(
        "--folds", type=positive_int, default=5, help="cross-validation folds (default: 5)"
    )
    parser.add_argument("--seed", type=int, default=0, help="fold assignment seed (default: 0)")
    parser.add_argument(
        "--k", type=positive_int, default=10, help="nDCG cutoff (default: %(default)s)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="PATH",
        help="where to save the chosen config (default: %(default)s)",
    )
    parser.add_argument(
        "--ignore-identical-ids",
        action="store_true",
        help="drop a retrieved document whose id is the query's id (ArguAna, Quora)",
    )
    parser.add_argument(
        "--bm25",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="index and search a BM25 branch beside dense and SPLADE, and tune over the "
        "three (English), or not (default: as HybridRetriever does for the collection; "
        "--no-bm25 for a collection indexed without one)",
    )
    add_dataset_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("ranx") is None:
        raise InvalidParameterError("tune needs ranx: pip install 'hybrid-retriever[eval]'.")
    if args.folds < 2:
        raise InvalidParameterError(f"--folds must be at least 2, got {args.folds}.")
    from hybrid_retriever.cli.indexing import index_dataset
    from hybrid_retriever.evaluation import load_beir
    from hybrid_retriever.fusion.config import FusionConfig
    from hybrid_retriever.fusion.methods import DEFAULT_FUSION
    from hybrid_retriever.retriever import HybridRetriever
    from hybrid_retriever.tuning import (
        DEFAULT_PREFETCH_GRID,
        candidate_configs,
        per_query_ndcg,
        retriever_branches,
        search_branches,
        tune,
    )

    dataset = load_beir(args.dataset, args.split)
    test = load_beir(args.dataset, args.test_split) if args.test_split else None
    collection = args.collection or collection_name(dataset.name)
    show_progress = not args.no_progress
    bm25_option = {} if args.bm25 is None else {"bm25_encoder": args.bm25}
    retriever = HybridRetriever(
        **{**retriever_arguments(args, collection=collection), **bm25_option}
    )
    # tune indexes the dataset first: a fresh collection gets BM25 unless --no-bm25.
    bm25_encoder = retriever.settled_bm25_encoder(creating=True)
    branches = retriever_branches(retriever)
    bm25 = None if bm25_encoder is None else bm25_encoder.identity()
    try:
        index_dataset(retriever, dataset, batch_size=args.batch_size, show_progress=show_progress)
        queries = dict(dataset.queries)
        if test is not None:
            queries.update(test.queries)
        rankings = search_branches(
            retriever,
            queries,
            depth=max(DEFAULT_PREFETCH_GRID),
            progress=_progress_bar(show_progress, len(queries)),
        )
    finally:
        retriever.close()

    result = tune(
        {q: rankings[q] for q in dataset.queries},
        dataset.qrels,
        queries=dataset.queries,
        configs=candidate_configs(branches=branches),
        folds=args.folds,
        seed=args.seed,
        k=args.k,
        ignore_identical_ids=args.ignore_identical_ids,
    )
    print(f"{dataset.name} ({dataset.split}): {len(dataset.queries)} judged queries")
    print(result.report())
    provenance: dict[str, Any] = {
        "dataset": dataset.name,
        "split": dataset.split,
        "metric": f"ndcg@{args.k}",
        "ndcg_all_tuning_queries": result.ndcg,
        "held_out_ndcg_per_fold": result.held_out_scores,
        "held_out_ndcg_mean": result.held_out_mean,
        "held_out_ndcg_std": result.held_out_std,
        "untuned": result.baselines,
        "models": {"dense": args.dense_model, "sparse": args.sparse_model},
        "branches": list(branches),
        "bm25": bm25,
        "command": shlex.join(["hybrid-retriever", *args.command_line]),
    }
    if test is not None:
        untuned = FusionConfig()
        scores = per_query_ndcg(
            [result.config, untuned],
            {q: rankings[q] for q in test.queries},
            test.qrels,
            queries=test.queries,
            k=args.k,
            ignore_identical_ids=args.ignore_identical_ids,
        )
        chosen, default = (sum(s.values()) / max(len(s), 1) for s in scores)
        print(
            f"{test.split} split ({len(test.queries)} queries, not used to choose): "
            f"nDCG@{args.k} {chosen:.4f} with the chosen config, {default:.4f} with "
            f"{DEFAULT_FUSION.value} (default)"
        )
        provenance[f"{test.split}_ndcg"] = chosen
        provenance[f"{test.split}_ndcg_default"] = default
    config = FusionConfig(
        method=result.config.method,
        weights=result.config.weights,
        rrf_k=result.config.rrf_k,
        prefetch_k=result.config.prefetch_k,
        provenance=provenance,
    )
    print(f"wrote {config.save(args.out)}")
    print(
        LOAD_HINT.format(
            collection=collection, out=shlex.quote(str(args.out)), out_repr=repr(str(args.out))
        )
    )
    return 0


def _progress_bar(show: bool, total: int) -> Any:
    from tqdm.auto import tqdm

    def wrap(items: Any) -> Any:
        return tqdm(items, total=total, desc="searching", unit="query", disable=not show, delay=0.5)

    return wrap
