"""``hybrid-retriever calibrate``: measure a collection's branch weights again, now.

Indexing already does this when it is due (see :mod:`hybrid_retriever.calibration`);
this command forces it, e.g. with a larger ``--sample``, or for a collection indexed
with ``auto_calibrate=False`` or by another tool. The weights are stored with the
collection, where every retriever on it finds them; ``--out`` also saves them as a
fusion config for ``search --fusion-config`` and ``HybridRetriever(fusion_config=...)``.
No labels needed; ``tune`` is the labelled counterpart.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hybrid_retriever.cli.common import (
    DEFAULT_PATH,
    PATH_ENV,
    add_location_options,
    add_model_options,
    default_path,
    positive_int,
    retriever_arguments,
)


def add_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    from hybrid_retriever.calibration import DEFAULT_SAMPLE

    parser = subparsers.add_parser(
        "calibrate",
        parents=parents,
        help="measure the branch weights of a collection from its own documents (no labels)",
        description=(
            "Measure how well each branch finds a document from one of its own sentences "
            "(known-item search on a sample of the collection), and store the branch "
            "weights for the adaptive fusion with the collection. Indexing does this by "
            "itself when it is due; this does it now."
        ),
    )
    parser.add_argument("--collection", required=True, metavar="NAME", help="collection name")
    parser.add_argument(
        "--sample",
        type=positive_int,
        default=DEFAULT_SAMPLE,
        metavar="N",
        help="documents to make queries from (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="PATH",
        help="also save the weights as a fusion config file",
    )
    add_location_options(parser, default=f"{DEFAULT_PATH}, or ${PATH_ENV} when set (as for index)")
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from hybrid_retriever.calibration import refresh_calibration
    from hybrid_retriever.cli.indexing import warm_up
    from hybrid_retriever.retriever import HybridRetriever

    retriever = HybridRetriever(
        **retriever_arguments(args, collection=args.collection, default_path=Path(default_path()))
    )
    try:
        warm_up(retriever)
        start = time.perf_counter()
        stored = refresh_calibration(retriever, force=True, sample=args.sample, seed=args.seed)
        seconds = time.perf_counter() - start
    finally:
        retriever.close()
    calibration = stored.calibration
    if calibration is None:
        print(f"Not calibrated: {stored.skipped}", file=sys.stderr)
        return 1
    mrr = calibration.known_item_mrr
    print(
        f"{calibration.queries} known-item queries from {stored.points} documents in "
        f"{args.collection!r}: MRR@10 dense {mrr['dense']:.3f}, sparse {mrr['sparse']:.3f} "
        f"({seconds:.1f} s)"
    )
    config = calibration.config(
        provenance={"command": shlex.join(["hybrid-retriever", *args.command_line])}
    )
    print(f"stored {config.describe()} with the collection")
    if args.out is not None:
        print(f"wrote {config.save(args.out)}")
    return 0
