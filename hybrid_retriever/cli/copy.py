"""``hybrid-retriever copy``: copy a collection to a Qdrant server, another folder or
engine, and back (:func:`hybrid_retriever.move.copy_collection`).

    hybrid-retriever copy my-notes --to-url http://localhost:6333
    hybrid-retriever copy my-notes --url http://localhost:6333 --to-path ./back

The source is given as for every subcommand (--path, --url, --engine; default
./qdrant_data), the target with --to-path / --to-url / --to-engine. A server's API key
comes from $QDRANT_API_KEY, the target's from $QDRANT_TARGET_API_KEY when it differs.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hybrid_retriever.cli.common import (
    API_KEY_ENV,
    LOCATION_HELP,
    add_location_options,
    location_arguments,
    positive_int,
)
from hybrid_retriever.storage.connect import Engine

TARGET_API_KEY_ENV = "QDRANT_TARGET_API_KEY"


def add_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "copy",
        parents=parents,
        help="copy a collection to a Qdrant server, another folder or engine (and back)",
        description=(
            "Copy a collection with its payloads, all its vectors and its model record, "
            "then check the copy (same count, same top 10 for a sample of stored vectors). "
            "Rerun the same command after an interruption: it resumes. The copy opens only "
            "once it is complete and checked."
        ),
    )
    parser.add_argument("collection", metavar="COLLECTION", help="the collection to copy")
    add_location_options(parser, default=LOCATION_HELP)
    target = parser.add_argument_group("where the copy goes (one of --to-path, --to-url)")
    where = target.add_mutually_exclusive_group(required=True)
    where.add_argument("--to-path", type=Path, metavar="DIR", help="an embedded data folder")
    where.add_argument(
        "--to-url",
        metavar="URL",
        help=f"a Qdrant server or cluster (API key: ${TARGET_API_KEY_ENV}, else ${API_KEY_ENV})",
    )
    target.add_argument(
        "--to-engine",
        choices=[e.value for e in Engine],
        help="embedded engine of the copy (default: as for --engine)",
    )
    target.add_argument(
        "--to-collection", metavar="NAME", help="name of the copy (default: COLLECTION)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a target collection that holds other data (default: refuse)",
    )
    parser.add_argument(
        "--verify-queries",
        type=int,
        default=100,
        metavar="N",
        help="sampled points searched in both to compare top 10s (default: %(default)s; 0: "
        "compare counts only)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=256, metavar="N", help=argparse.SUPPRESS
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def target_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The copy's connection arguments, from the --to-* options."""
    arguments: dict[str, Any]
    if args.to_url:
        key = os.environ.get(TARGET_API_KEY_ENV) or os.environ.get(API_KEY_ENV) or None
        arguments = {"url": args.to_url, "api_key": key}
    else:
        arguments = {"path": args.to_path}
    if args.to_engine:
        arguments["engine"] = args.to_engine
    return arguments


def run(args: argparse.Namespace) -> int:
    from hybrid_retriever.move import copy_collection

    report = copy_collection(
        args.collection,
        source=location_arguments(args),
        target=target_arguments(args),
        target_collection=args.to_collection,
        overwrite=args.overwrite,
        batch_size=args.batch_size,
        verify_queries=args.verify_queries,
        show_progress=not args.no_progress,
    )
    resumed = " (resumed)" if report.resumed else ""
    print(
        f"Copied {report.copied_points} points{resumed} into {report.target_collection!r}: "
        f"{report.target_points} points, as in the source; same top 10 for "
        f"{report.queries_checked} sampled points on {len(report.disagreements)} vectors; "
        f"{report.seconds:.1f} s."
    )
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    return 0
