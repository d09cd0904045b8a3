"""``hybrid-retriever search``: one query, with each result's fused and per-branch rank."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from hybrid_retriever.cli.common import (
    LOCATION_HELP,
    add_location_options,
    add_model_options,
    add_tenant_options,
    embedded_folder,
    positive_int,
    retriever_arguments,
)
from hybrid_retriever.cli.filters import FILTER_HELP, parse_filters
from hybrid_retriever.errors import CollectionNotFoundError
from hybrid_retriever.evaluation import DEFAULT_RUN, DEFAULT_RUNS
from hybrid_retriever.fusion.branches import ALL_BRANCHES
from hybrid_retriever.fusion.methods import DEFAULT_FUSION, FusionMethod
from hybrid_retriever.metadata_keys import DOC_ID_KEY

DEFAULT_K = 4
"""Results shown: the same default as Python's ``k`` and LangChain's retrievers."""
_RESULT_KEYS = frozenset({"_id", "_score", "_ranks", "_scores", "_relevance"})


def mode_options(mode: str) -> dict[str, Any]:
    """The search options of the ``eval`` run named ``mode`` (``convex``: the default fusion,
    or the one ``--fusion-config`` loads)."""
    return dict(next(run.options for run in DEFAULT_RUNS if run.name == mode))


def branch_list(text: str) -> list[str]:
    """argparse type: ``dense,sparse,bm25`` or any of them, checked before models load."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ALL_BRANCHES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of branches among {', '.join(ALL_BRANCHES)}"
        )
    return names


def search_options(args: argparse.Namespace) -> dict[str, Any]:
    """The per-call options ``--mode``, ``--fusion`` and ``--branches`` describe.

    A mode whose weights name some branches (``dense``: dense 1, sparse 0) searches those
    only, as its ``eval`` run was defined, rather than adding BM25 at weight 1; ``--branches``
    chooses the branches itself (the mode's weights for the others are dropped)."""
    options = mode_options(args.mode)
    if args.fusion:
        options["fusion"] = args.fusion
    weights = options.get("weights")
    if args.branches is not None:
        options["branches"] = args.branches
        if weights is not None:
            options["weights"] = {b: w for b, w in weights.items() if b in args.branches}
    elif weights is not None and "branches" not in options:
        options["branches"] = list(weights)
    return options


def add_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "search",
        parents=parents,
        help="search a collection and show why each result ranked where it did",
        description=(
            "Search a collection. Each result shows its fused score and, per branch,\n"
            "its rank and raw score (cosine for dense, dot product for SPLADE, BM25 score\n"
            "for bm25); '-' means that branch did not return it. A collection indexed\n"
            "with BM25 (the default) is searched with its three branches."
        ),
        epilog=FILTER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("query", metavar="QUERY", help="the text to search for")
    parser.add_argument(
        "--collection",
        required=True,
        metavar="NAME",
        help="collection name (as 'index' named it: by default its source's name)",
    )
    parser.add_argument(
        "--k", type=positive_int, default=DEFAULT_K, help="results to show (default: %(default)s)"
    )
    parser.add_argument(
        "--mode",
        choices=[r.name for r in DEFAULT_RUNS],
        default=DEFAULT_RUN,
        help="how the results are ranked, as the 'eval' run of that name: dense or sparse "
        "alone, or both fused (default: %(default)s, the default fusion; with "
        "--fusion-config, the fusion it saved)",
    )
    parser.add_argument(
        "--branches",
        type=branch_list,
        metavar="LIST",
        help="the branches to search and fuse, comma-separated among dense,sparse,bm25 "
        "(default: all the collection has)",
    )
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="EXPR",
        help="metadata filter, repeatable (ANDed); syntax below",
    )
    parser.add_argument(
        "--fusion",
        choices=[m.value for m in FusionMethod],
        help=f"the fusion method, with its default weights (default: {DEFAULT_FUSION.value})",
    )
    parser.add_argument(
        "--fusion-config",
        type=Path,
        metavar="FILE",
        help="the fusion configuration 'hybrid-retriever tune' saved (its --out)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    add_location_options(parser, default=f"{LOCATION_HELP} (as for index)")
    add_model_options(parser)
    add_tenant_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    query_filter = parse_filters(args.filter)  # bad syntax fails before anything loads
    folder = embedded_folder(args)
    if folder is not None and not folder.exists():
        # Searching reads: it must not leave an empty data folder behind.
        raise CollectionNotFoundError(
            f"No data at {folder}: the folder does not exist, nothing has been indexed "
            f"there. Run 'hybrid-retriever index SOURCE --collection {args.collection}' "
            "first, or pass the --path (or --url) it indexed into."
        )
    from hybrid_retriever.retriever import HybridRetriever

    retriever = HybridRetriever(
        **retriever_arguments(args, collection=args.collection),
        fusion_config=args.fusion_config,
    )
    options = search_options(args)
    try:
        documents = retriever.invoke(args.query, k=args.k, filter=query_filter, **options)
    finally:
        retriever.close()
    rows = result_rows(documents)
    if args.json:
        report = {
            "query": args.query,
            "collection": args.collection,
            "mode": args.mode,
            "fusion": str(options.get("fusion", retriever.fusion.value)),
            "branches": searched_branches(documents),
            "k": args.k,
            "filter": args.filter,
            "results": rows,
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(format_table(rows) if rows else "No results.")
    return 0


def searched_branches(documents: Sequence[Document]) -> list[str]:
    """The branches the search fused (every result reports a rank for each, maybe None)."""
    return [b for b in ALL_BRANCHES if any(b in d.metadata["_ranks"] for d in documents)]


def result_rows(documents: Sequence[Document]) -> list[dict[str, Any]]:
    """Plain data for each result: what both the table and --json show; one entry per
    branch searched (dense, sparse, bm25)."""
    branches = searched_branches(documents)
    rows = []
    for rank, doc in enumerate(documents, start=1):
        ranks, scores = doc.metadata["_ranks"], doc.metadata["_scores"]
        metadata = {k: v for k, v in doc.metadata.items() if k not in _RESULT_KEYS}
        rows.append(
            {
                "rank": rank,
                "score": doc.metadata["_score"],
                "relevance": doc.metadata["_relevance"],
                **{b: {"rank": ranks.get(b), "score": scores.get(b)} for b in branches},
                "id": str(metadata.get(DOC_ID_KEY, doc.id)),
                "point_id": doc.metadata["_id"],
                "text": doc.page_content,
                "metadata": metadata,
            }
        )
    return rows


def format_table(rows: Sequence[dict[str, Any]], *, width: int | None = None) -> str:
    """A text table sized to the terminal: rank, fused, one column per branch searched
    (dense, sparse, bm25), id, snippet."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    branches = [b for b in ALL_BRANCHES if rows and b in rows[0]]
    id_width = min(max(len("id"), *(len(r["id"]) for r in rows)), 24)
    columns = "".join(f"{b:>13}  " for b in branches)
    header = f"{'#':>3}  {'fused':>7}  {columns}{'id':<{id_width}}  text"
    snippet_width = max(width - len(header) + len("text"), 30)
    lines = [header]
    for row in rows:
        cells = "".join(f"{_cell(row[b]):>13}  " for b in branches)
        lines.append(
            f"{row['rank']:>3}  {row['score']:.5f}  {cells}"
            f"{_clip(row['id'], id_width):<{id_width}}  {_clip(row['text'], snippet_width)}"
        )
    return "\n".join(lines)


def _cell(found: dict[str, Any]) -> str:
    """A branch's rank and raw score, or '-' where it did not return the result."""
    return "-" if found["rank"] is None else f"#{found['rank']} {found['score']:.3f}"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
