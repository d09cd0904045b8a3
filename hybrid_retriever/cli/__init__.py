"""The ``hybrid-retriever`` command line: ``index``, ``search``, ``eval``, ``tune``, ``copy``
and ``demo``.

    hybrid-retriever index ./my-notes                  # collection 'my-notes', in ./qdrant_data
    hybrid-retriever search "why does bread rise" --collection my-notes --filter topic=cooking
    hybrid-retriever eval ./scifact --json scifact.json --plot scifact.png
    hybrid-retriever tune ./scifact --split train --out fusion.json
    hybrid-retriever search "vitamin D" --collection scifact --fusion-config fusion.json
    hybrid-retriever copy scifact --to-url http://localhost:6333
    hybrid-retriever demo

Every subcommand but ``demo`` keeps its data in ``./qdrant_data`` (``$HYBRID_RETRIEVER_PATH``
when set) unless --path, --url or --memory says otherwise, and names the collection after
its source (``--collection`` to choose).

Errors are one line on stderr (``hybrid-retriever: error: ...``) with exit status 1;
``--debug`` shows the traceback instead. Importing this module, and ``--help``, load no
model and no torch: each subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from hybrid_retriever.advice import command_line
from hybrid_retriever.cli import copy, demo, evaluate, index, index_vectors, search, tune
from hybrid_retriever.cli.common import add_debug_option
from hybrid_retriever.errors import HybridRetrieverError

PROG = "hybrid-retriever"
SUBCOMMANDS = (index, index_vectors, search, evaluate, tune, copy, demo)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hybrid-retriever")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Hybrid SPLADE + dense retrieval on Qdrant, from the command line.",
        epilog=f"Run '{PROG} COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    add_debug_option(parser, top_level=True)
    common = argparse.ArgumentParser(add_help=False)
    add_debug_option(common, top_level=False)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(subparsers, [common])
    return parser


def describe(error: BaseException) -> str:
    """One line: our own errors speak for themselves, others are named."""
    message = " ".join(str(error).split())
    if isinstance(error, HybridRetrieverError | OSError):
        return message or type(error).__name__
    return f"{type(error).__name__}: {message} (run with --debug for the traceback)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return the exit status (0 ok, 1 error, 2 usage, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = argv  # recorded in reports, to say how they were made
    if not args.debug:
        # The error we report says the server cannot be reached; this warning repeats it.
        warnings.filterwarnings("ignore", message="Failed to obtain server version")
    try:
        with command_line():  # errors and warnings advise this command's flags
            return int(args.run(args))
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        print(f"{PROG}: error: {describe(error)}", file=sys.stderr)
        return 1
