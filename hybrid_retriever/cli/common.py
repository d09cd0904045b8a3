"""Options every subcommand shares: where the collection lives, which models, --debug.

Kept free of heavy imports: building the parser (``--help``) must not load torch.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from hybrid_retriever.encoders.backend import EncoderBackend
from hybrid_retriever.encoders.precision import Precision
from hybrid_retriever.model_catalog import DEFAULT_DENSE_MODEL, DEFAULT_SPARSE_MODEL
from hybrid_retriever.storage.connect import (
    COMMAND_LINE_PATH,
    LOCATION_ENV,
    Engine,
    default_location,
)

API_KEY_ENV = "QDRANT_API_KEY"
"""The server API key is read from this environment variable, never from a flag
(flags end up in shell history and process listings)."""

PATH_ENV = LOCATION_ENV
DEFAULT_PATH = str(COMMAND_LINE_PATH)
LOCATION_HELP = f"{DEFAULT_PATH}, or ${PATH_ENV} when set"
"""Where every subcommand keeps its data when no location is given (one rule:
:func:`~hybrid_retriever.storage.connect.default_location`)."""


def default_path() -> Path:
    """The command line's default data folder."""
    return default_location(command_line=True) or COMMAND_LINE_PATH


def collection_name(source_name: str) -> str:
    """A collection name every engine accepts, from a dataset folder's or file's name."""
    for suffix in (".gz", ".jsonl", ".ndjson"):
        source_name = source_name.removesuffix(suffix)
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", source_name).strip(".-_")
    return cleaned or "dataset"


def add_collection_option(parser: argparse.ArgumentParser, *, what: str) -> None:
    """``--collection``: one default for every subcommand that reads a source."""
    parser.add_argument(
        "--collection",
        metavar="NAME",
        help=f"collection to {what} (default: the name of the source folder or file, e.g. "
        "'scifact' for ./data/scifact)",
    )


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, refused at parse time rather than after models load."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_debug_option(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """``--debug`` before or after the subcommand name.

    A subparser's default would overwrite the top-level value, so only the top level
    has a default.
    """
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if top_level else argparse.SUPPRESS,
        help="on error, show the full traceback instead of a one-line message",
    )


def add_location_options(parser: argparse.ArgumentParser, *, default: str) -> None:
    """``--path`` / ``--url`` / ``--memory`` (one of them) and ``--engine``."""
    group = parser.add_argument_group(
        "where the collection lives", f"Default: {default}. Pick at most one of these three."
    )
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--path", type=Path, metavar="DIR", help="embedded Qdrant data folder on disk"
    )
    where.add_argument(
        "--url",
        metavar="URL",
        help=f"a Qdrant server or cluster, e.g. http://localhost:6333 (API key: ${API_KEY_ENV})",
    )
    where.add_argument(
        "--memory",
        action="store_true",
        help="a throw-away embedded collection, deleted when the command ends",
    )
    group.add_argument(
        "--engine",
        choices=[e.value for e in Engine],
        help="embedded engine (default: edge, or qdrant-client for a folder it wrote)",
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The two encoders; a collection must be searched with the models that indexed it."""
    group = parser.add_argument_group("models")
    group.add_argument(
        "--dense-model",
        default=DEFAULT_DENSE_MODEL,
        metavar="NAME",
        help="dense model: short name, hub id or local path (default: %(default)s)",
    )
    group.add_argument(
        "--sparse-model",
        default=DEFAULT_SPARSE_MODEL,
        metavar="NAME",
        help="SPLADE model: short name, hub id or local path (default: %(default)s)",
    )
    group.add_argument(
        "--precision",
        choices=[p.value for p in Precision],
        help="encoder precision (default: auto = int8 under ONNX Runtime, bf16 documents "
        "where the hardware has it under PyTorch; fp32 = the reference; docs/speed.md)",
    )
    group.add_argument(
        "--backend",
        choices=[b.value for b in EncoderBackend],
        help="encoder runtime (default: auto = ONNX Runtime int8 where installed, else "
        "PyTorch; onnx = ONNX Runtime fp32; docs/speed.md)",
    )
    group.add_argument(
        "--device", metavar="DEVICE", help="cpu, cuda, cuda:N or mps (default: picked by torch)"
    )


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    """What ``eval`` and ``tune`` share: where a BEIR dataset is indexed, and with what."""
    from hybrid_retriever.ingestion import DEFAULT_BATCH_SIZE

    add_collection_option(parser, what="index the dataset into")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_location_options(parser, default=LOCATION_HELP)
    add_model_options(parser)


def location_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The HybridRetriever connection arguments the options describe; with none, the
    command line's default folder (:func:`default_path`)."""
    arguments: dict[str, Any]
    if args.url:
        arguments = {"url": args.url, "api_key": os.environ.get(API_KEY_ENV) or None}
    elif args.memory:
        arguments = {"location": ":memory:"}
    elif args.path is not None:
        arguments = {"path": args.path}
    else:
        arguments = {"path": default_path()}
    if args.engine:
        arguments["engine"] = args.engine
    return arguments


def embedded_folder(args: argparse.Namespace) -> Path | None:
    """The folder an embedded collection is read from, None for --url and --memory."""
    if args.url or args.memory:
        return None
    return Path(args.path) if args.path is not None else default_path()


def retriever_arguments(args: argparse.Namespace, *, collection: str) -> dict[str, Any]:
    """Everything to build the HybridRetriever the options describe."""
    from hybrid_retriever.encoders.dense import SentenceTransformerEncoder
    from hybrid_retriever.encoders.splade import SpladeEncoder

    encoder_options: dict[str, Any] = {"device": getattr(args, "device", None)}
    if getattr(args, "precision", None):
        encoder_options["precision"] = args.precision
    if getattr(args, "backend", None):
        encoder_options["backend"] = args.backend
    arguments: dict[str, Any] = {
        "collection_name": collection,
        "dense_encoder": SentenceTransformerEncoder(args.dense_model, **encoder_options),
        "sparse_encoder": SpladeEncoder(args.sparse_model, **encoder_options),
        **location_arguments(args),
        **tenant_arguments(args),
    }
    if getattr(args, "no_bm25", False):
        # Otherwise bm25_encoder is left unset: BM25 for a new collection, an existing
        # one as it was written (hybrid_retriever/bm25_setting.py).
        arguments["bm25_encoder"] = False
    return arguments


def add_tenant_options(parser: argparse.ArgumentParser) -> None:
    """``--tenant`` / ``--tenant-key``: confine the command to one tenant (``tenancy``)."""
    group = parser.add_argument_group("tenant")
    group.add_argument(
        "--tenant",
        metavar="VALUE",
        help="confine everything to the documents of this tenant (a string): written with "
        "metadata TENANT_KEY=VALUE, searched and read only there",
    )
    group.add_argument(
        "--tenant-key",
        metavar="KEY",
        help="the metadata key that holds the tenant (default: 'tenant'; needs --tenant)",
    )


def tenant_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The HybridRetriever tenant arguments (none for commands without the options)."""
    arguments = {
        "tenant": getattr(args, "tenant", None),
        "tenant_key": getattr(args, "tenant_key", None),
    }
    return {name: value for name, value in arguments.items() if value is not None}
