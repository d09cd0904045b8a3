"""``hybrid-retriever demo``: the README's main job (:func:`hybrid_retriever.demo.main`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from hybrid_retriever.cli.common import (
    add_location_options,
    location_arguments,
    positive_int,
)


def add_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        parents=parents,
        help="index the bundled demo corpus and answer a few questions",
        description=(
            "Index the few dozen documents the package ships into collection 'demo' and "
            "answer a few questions (or yours), showing the fused score and each branch's "
            "rank and score."
        ),
    )
    parser.add_argument("questions", nargs="*", metavar="QUESTION", help="questions to ask")
    parser.add_argument(
        "--k", type=positive_int, default=3, help="results per question (default: 3)"
    )
    # The one command that does not use the default folder: a demo leaves nothing behind.
    add_location_options(parser, default="a throw-away embedded collection")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.url is None and args.engine is None:
        from hybrid_retriever.demo import main

        path = ["--path", str(args.path)] if args.path is not None else []
        main(["--k", str(args.k), *path, "--", *args.questions])
        return 0
    # hybrid_retriever.demo.main only knows embedded folders; the same steps, anywhere.
    from hybrid_retriever.demo import DEFAULT_QUESTIONS, demo_documents, format_results
    from hybrid_retriever.quirks import plural
    from hybrid_retriever.retriever import HybridRetriever

    where = location_arguments(args)
    if args.path is None and not args.url:
        where = {**where, "path": None, "location": ":memory:"}
        where = {k: v for k, v in where.items() if v is not None}
    retriever = HybridRetriever.from_documents(
        demo_documents(),
        collection_name="demo",
        show_progress=False,
        **where,
    )
    try:
        print(f"Indexed {plural(retriever.count(), 'document')} into collection 'demo'.\n")
        for question in args.questions or DEFAULT_QUESTIONS:
            print(f"Q: {question}")
            print(format_results(retriever.invoke(question, k=args.k)))
            print()
    finally:
        retriever.close()
    return 0
