"""``hybrid-retriever eval``: each branch alone vs fused on a BEIR dataset, scored by ranx.

The branches are dense and SPLADE, and BM25 where the retriever has it (``--bm25`` /
``--no-bm25``; by default, as ``HybridRetriever`` decides for the collection). The runs are
:func:`~hybrid_retriever.evaluation.default_runs` for those branches: ``dense``,
``sparse`` and ``bm25`` alone; ``convex``, which searches as a retriever does by default
(convex fusion with the query-length weights, over all the branches); and ``rrf``,
``dbsf``, ``convex-0.5`` (the default method with equal weights) and ``adaptive`` over
all the branches.

The dataset is read as it ships: its quirks (empty documents, judgements naming
documents the corpus lacks, ...) are handled as BEIR does and listed in the output and
the JSON report (:mod:`hybrid_retriever.quirks`). The corpus is indexed once.

Each query is then encoded once and each branch searched once (one request); every run
is computed from those lists with its own options, by the
retriever's own fusion step (``HybridRetriever.fuse_rankings``), so the runs differ
only in how the branches are weighted and fused. Each query retrieves ``max(100, k)``
documents, so that Recall@100 means what it says. Latency is measured apart, on a
sample of queries sent through ``invoke`` with the query cache off, as users see it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hybrid_retriever.branch_lists import retriever_branches
from hybrid_retriever.cli.common import (
    add_dataset_options,
    collection_name,
    positive_int,
    retriever_arguments,
)
from hybrid_retriever.cli.plot import metric_label
from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.evaluation import (
    DEFAULT_DEPTH,
    DEFAULT_RUN,
    RUN_NAMES,
    BeirDataset,
    RunResult,
    RunSpec,
    default_runs,
    latency_sample,
    load_beir,
    metric_names,
    percentile,
    run_from_one_search,
    score_queries,
    time_runs,
)
from hybrid_retriever.fusion.branches import ALL_BRANCHES, BM25, TWO_BRANCHES

DEFAULT_LATENCY_QUERIES = 20
"""Queries timed per run through ``invoke``: enough for a p50, a rough p95."""


def add_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "eval",
        parents=parents,
        help="compare dense, SPLADE, BM25 and fused retrieval on a BEIR dataset",
        description=(
            "Index a BEIR dataset once, then run its queries "
            f"{', '.join(f'{r.name} ({r.description})' for r in default_runs(ALL_BRANCHES))}"
            ", and report nDCG@k, Recall@100 and MRR@k per run (computed with ranx), plus "
            "query latency. Without a BM25 branch, the same without the bm25 run."
        ),
    )
    parser.add_argument(
        "dataset", type=Path, metavar="DATASET", help="BEIR folder: corpus, queries, qrels/"
    )
    parser.add_argument("--split", default="test", help="qrels split (default: %(default)s)")
    parser.add_argument(
        "--k", type=positive_int, default=10, help="cutoff of nDCG and MRR (default: %(default)s)"
    )
    parser.add_argument(
        "--ignore-identical-ids",
        action="store_true",
        help="drop a retrieved document whose id is the query's id (BEIR convention "
        "for ArguAna and Quora)",
    )
    parser.add_argument(
        "--runs",
        default=None,
        metavar="LIST",
        help=f"comma-separated runs among {', '.join(RUN_NAMES)} (default: all those of "
        "the branches searched)",
    )
    parser.add_argument(
        "--bm25",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="index and search a BM25 branch beside dense and SPLADE (English), or not "
        "(default: as HybridRetriever does for the collection; --no-bm25 for a collection "
        "indexed without one)",
    )
    parser.add_argument(
        "--latency-queries",
        type=int,
        default=DEFAULT_LATENCY_QUERIES,
        metavar="N",
        help="queries timed per run through invoke, cache off, for p50/p95 (0: none; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--chunking",
        action="store_true",
        help="index documents longer than the encoders read as overlapping chunks, as "
        "`index` does for JSON lines; a document ranks where its best chunk does "
        "(default: whole documents, as BEIR scores them)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the report as JSON")
    parser.add_argument(
        "--rankings",
        action="store_true",
        help="include every query's ranked doc ids in the JSON report",
    )
    parser.add_argument(
        "--plot", type=Path, metavar="OUT.png", help="bar chart of the metrics per run"
    )
    add_dataset_options(parser)
    parser.set_defaults(run=run)


def select_runs(names: str | None, branches: Sequence[str] = ALL_BRANCHES) -> list[RunSpec]:
    """The runs named in a comma-separated list, in the order given (None: every run of
    ``branches``)."""
    known = {r.name: r for r in default_runs(branches)}
    if names is None:
        return list(known.values())
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    if BM25 in chosen and BM25 not in known:
        raise InvalidParameterError(
            f"--runs {names!r}: the {BM25} run needs the BM25 branch; pass --bm25 (for a "
            f"collection indexed with BM25 or a new one), or leave {BM25} out."
        )
    unknown = [n for n in chosen if n not in known]
    if unknown or not chosen:
        raise InvalidParameterError(
            f"--runs {names!r}: choose among {', '.join(known)} (comma-separated)."
        )
    return [known[n] for n in dict.fromkeys(chosen)]


def run(args: argparse.Namespace) -> int:
    # Everything that can be checked without models is checked first: the run names here,
    # whether the retriever's branches allow them once it is built.
    select_runs(args.runs, TWO_BRANCHES if args.bm25 is False else ALL_BRANCHES)
    if importlib.util.find_spec("ranx") is None:
        raise InvalidParameterError("eval needs ranx: pip install 'hybrid-retriever[eval]'.")
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        raise InvalidParameterError("--plot needs matplotlib: pip install 'hybrid-retriever[cli]'.")
    if args.latency_queries < 0:
        raise InvalidParameterError(
            f"--latency-queries {args.latency_queries}: give 0 (no timing) or more."
        )
    dataset = load_beir(args.dataset, args.split)
    for found in dataset.quirks:
        print(f"Data: {found.message}")
    collection = args.collection or collection_name(dataset.name)
    depth = max(DEFAULT_DEPTH, args.k)
    show_progress = not args.no_progress

    from tqdm.auto import tqdm

    from hybrid_retriever.cli.indexing import index_dataset, warm_up
    from hybrid_retriever.machine import encoder_runtimes, machine_info
    from hybrid_retriever.retriever import HybridRetriever

    # No query cache: the timed queries encode each time, as a user's first query does.
    bm25_option = {} if args.bm25 is None else {"bm25_encoder": args.bm25}
    retriever = HybridRetriever(
        **{**retriever_arguments(args, collection=collection), **bm25_option},
        query_cache_size=0,
    )
    try:
        # A fresh collection is created with BM25 unless --no-bm25: settle that first.
        bm25_encoder = retriever.settled_bm25_encoder(creating=True)
        branches = retriever_branches(retriever)
        runs = select_runs(args.runs, branches)
        storage = repr(retriever.storage)
        bm25 = None if bm25_encoder is None else bm25_encoder.identity()
        warm_up(retriever)
        encoders = encoder_runtimes(retriever)
        chunker = None
        if args.chunking:
            from hybrid_retriever.chunking import Chunker

            chunker = Chunker.for_encoders(retriever.dense_encoder, retriever.sparse_encoder)
        stats = index_dataset(
            retriever,
            dataset,
            batch_size=args.batch_size,
            show_progress=show_progress,
            chunker=chunker,
        )
        # Latency first, in the state a user's process is in; then one search per query.
        timed = latency_sample(dataset.queries, args.latency_queries)
        start = time.perf_counter()
        latencies = time_runs(retriever, timed, runs, k=depth)
        latency_seconds = time.perf_counter() - start
        start = time.perf_counter()
        results = run_from_one_search(
            retriever,
            dataset.queries,
            runs,
            k=depth,
            ignore_identical_ids=args.ignore_identical_ids,
            progress=lambda items: tqdm(
                items,
                total=len(dataset.queries),
                desc="queries",
                unit="query",
                disable=not show_progress,
                delay=0.5,
            ),
        )
        search_seconds = time.perf_counter() - start
        for name, measured in latencies.items():
            results[name].latencies_ms = measured
    finally:
        retriever.close()

    report = build_report(
        dataset,
        results,
        runs=runs,
        k=args.k,
        depth=depth,
        index={
            "search_seconds": search_seconds,
            "latency_queries": len(timed),
            "latency_seconds": latency_seconds,
            "index_seconds": stats.seconds,
            "index_docs_per_s": stats.docs_per_second,
            "passages": stats.read,
            "docs_written": stats.written,
            "docs_unchanged": stats.unchanged,
            "points": stats.points,
        },
        settings={
            "collection": collection,
            "storage": storage,
            "models": {"dense": args.dense_model, "sparse": args.sparse_model},
            "branches": list(branches),
            "bm25": bm25,
            "encoders": encoders,
            "ignore_identical_ids": args.ignore_identical_ids,
            "chunking": chunker is not None,
            "command": shlex.join(["hybrid-retriever", *args.command_line]),
            "machine": machine_info(),
        },
        with_rankings=args.rankings,
    )
    print(format_report(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    if args.plot is not None:
        from hybrid_retriever.cli.plot import plot_report

        plot_report(report, args.plot)
        print(f"wrote {args.plot}")
    return 0


def build_report(
    dataset: BeirDataset,
    results: Mapping[str, RunResult],
    *,
    runs: Sequence[RunSpec],
    k: int,
    depth: int,
    index: Mapping[str, Any],
    settings: Mapping[str, Any],
    with_rankings: bool,
) -> dict[str, Any]:
    """The JSON report: metrics and latency per run, per-query scores, how it was made."""
    metrics = metric_names(k)
    per_query = {
        name: score_queries(dataset.qrels, r.ranking, metrics) for name, r in results.items()
    }
    run_reports: dict[str, dict[str, Any]] = {}
    for spec in runs:
        scores = per_query[spec.name]
        latencies = results[spec.name].latencies_ms
        run_reports[spec.name] = {
            **{m: math.fsum(s[m] for s in scores.values()) / max(len(scores), 1) for m in metrics},
            "query_ms_p50": percentile(latencies, 50) if latencies else None,
            "query_ms_p95": percentile(latencies, 95) if latencies else None,
            "options": dict(spec.options),
            "description": spec.description,
        }
    headline = DEFAULT_RUN if DEFAULT_RUN in run_reports else runs[-1].name
    report: dict[str, Any] = {
        "dataset": dataset.name,
        "split": dataset.split,
        "num_docs": dataset.num_docs,
        "num_queries": len(dataset.queries),
        "quirks": [q.to_json() for q in dataset.quirks],
        "k": k,
        "depth": depth,
        "metrics": list(metrics),
        "runs": run_reports,
        **index,
        "query_ms_p50": run_reports[headline]["query_ms_p50"],
        **settings,
        "per_query": per_query,
    }
    if with_rankings:
        report["rankings"] = {
            name: {q: r.ranked_ids(q) for q in dataset.queries} for name, r in results.items()
        }
    return report


def format_report(report: Mapping[str, Any]) -> str:
    """A text table: one row per run, the metrics and query latency."""
    metrics = report["metrics"]
    labels = [metric_label(m) for m in metrics]
    widths = [max(len(label), 6) for label in labels]
    name_width = max(len("run"), *(len(n) for n in report["runs"]))
    lines = [
        f"{report['dataset']} ({report['split']}): {report['num_docs']} documents, "
        f"{report['num_queries']} queries; "
        f"{_chunked(report)}indexed in {report['index_seconds']:.1f} s "
        f"({report['docs_written']} written, {report['docs_unchanged']} unchanged); every run "
        f"from one search per query in {report['search_seconds']:.1f} s; latency over "
        f"{report['latency_queries']} queries per run through invoke",
        *_encoders_line(report),
        "  ".join(
            [
                f"{'run':<{name_width}}",
                *(f"{label:>{w}}" for label, w in zip(labels, widths, strict=True)),
                f"{'p50 ms':>8}",
                f"{'p95 ms':>8}",
            ]
        ),
    ]
    for name, values in report["runs"].items():
        lines.append(
            "  ".join(
                [
                    f"{name:<{name_width}}",
                    *(f"{values[m]:>{w}.4f}" for m, w in zip(metrics, widths, strict=True)),
                    _milliseconds(values["query_ms_p50"]),
                    _milliseconds(values["query_ms_p95"]),
                ]
            )
        )
    return "\n".join(lines)


def _encoders_line(report: Mapping[str, Any]) -> list[str]:
    """``encoders: dense M (onnx-int8), sparse M (onnx-int8)``: the runtime changes speed and
    vectors, so the table says which one made it."""
    encoders = report.get("encoders")
    if not encoders:
        return []
    parts = [f"{branch} {e['model']} ({e['backend']})" for branch, e in encoders.items()]
    return [f"encoders: {', '.join(parts)}"]


def _chunked(report: Mapping[str, Any]) -> str:
    """``as N passages (chunked); `` when the documents were chunked, else nothing."""
    if not report.get("chunking"):
        return ""
    return f"as {report['passages']} passages (chunked); "


def _milliseconds(value: float | None) -> str:
    return f"{'-':>8}" if value is None else f"{value:>8.1f}"
