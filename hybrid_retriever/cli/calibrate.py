"""``hybrid-retriever calibrate``: branch weights for a collection, from its documents alone.

Samples documents from the source that was indexed, searches each branch with one of
their sentences, and saves the weights (see :mod:`hybrid_retriever.calibration`) as a
fusion config that ``search --fusion-config`` and ``HybridRetriever(fusion_config=...)``
load. No labels needed; ``tune`` is the labelled counterpart.
"""

from __future__ import annotations

import argparse
import shlex
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
from hybrid_retriever.cli.tune import DEFAULT_OUT
from hybrid_retriever.sources import open_source


def add_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    from hybrid_retriever.calibration import DEFAULT_SAMPLE

    parser = subparsers.add_parser(
        "calibrate",
        parents=parents,
        help="weight the branches for a collection from its own documents (no labels)",
        description=(
            "Measure how well each branch finds a document from one of its own sentences "
            "(known-item search on a sample of SOURCE), and save branch weights for the "
            "adaptive fusion. SOURCE is what you indexed into --collection."
        ),
    )
    parser.add_argument("source", type=Path, metavar="SOURCE", help="what was indexed")
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
        default=DEFAULT_OUT,
        metavar="PATH",
        help="where to save the config (default: %(default)s)",
    )
    add_location_options(parser, default=f"{DEFAULT_PATH}, or ${PATH_ENV} when set (as for index)")
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    source = open_source(args.source)
    from hybrid_retriever.calibration import calibrate
    from hybrid_retriever.retriever import HybridRetriever

    retriever = HybridRetriever(
        **retriever_arguments(args, collection=args.collection, default_path=Path(default_path()))
    )
    try:
        calibration = calibrate(retriever, source, sample=args.sample, seed=args.seed)
    finally:
        retriever.close()
    config = calibration.config(
        provenance={
            "source": str(args.source),
            "command": shlex.join(["hybrid-retriever", *args.command_line]),
        }
    )
    mrr = calibration.known_item_mrr
    print(
        f"{calibration.queries} known-item queries from {args.source}: MRR@10 "
        f"dense {mrr['dense']:.3f}, sparse {mrr['sparse']:.3f}"
    )
    print(f"chose {config.describe()}")
    print(f"wrote {config.save(args.out)}")
    return 0
