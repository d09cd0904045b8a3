"""``hybrid-retriever index``: stream a source into a collection, resumably."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybrid_retriever.cli.common import (
    LOCATION_HELP,
    add_collection_option,
    add_location_options,
    add_model_options,
    add_tenant_options,
    collection_name,
    positive_int,
    retriever_arguments,
)
from hybrid_retriever.ingestion import DEFAULT_BATCH_SIZE
from hybrid_retriever.quirks import plural
from hybrid_retriever.sources import SourceKind, open_source

if TYPE_CHECKING:
    from langchain_core.documents import Document

SOURCE_HELP = """\
sources:
  a BEIR dataset folder      corpus.jsonl or corpus.jsonl.gz inside; id = _id,
                             text = title + " " + text
  a JSON-lines file          .jsonl, .jsonl.gz, .ndjson: one object per line with
                             "text", optional "_id" or "id", "title", "metadata" (an
                             object); other top-level keys become metadata too
  a folder of text files     every .txt and .md file below it; id = relative path,
                             metadata "source" (that path, with /) and "folder"
                             (its folder, "" at the top): --filter folder=guides

Running the same command again is safe and cheap: ids are derived from the source
ids, documents already stored unchanged are skipped, changed ones are rewritten.
A record without an id gets one from its text and metadata, so editing it adds a
new point. Documents removed from the source are not deleted from the collection.

Text files and JSON-lines records longer than the encoders read (256 tokens for the
default dense model) are split into overlapping chunks that they read whole; each
chunk's id is "<id>#<n>" and its metadata says source_id, chunk and chunk_chars
(hybrid_retriever/chunking.py). --no-chunking indexes them whole (the encoders then
read only their beginning). BEIR folders are indexed whole, as BEIR scores documents.

JSON lines are read one line at a time, and each line is checked as the write
path checks it before any model loads: a line that is not UTF-8, not a JSON object,
has NaN or Infinity, a lone surrogate escape (\\ud800), a key twice, no text,
wrong types or reserved metadata keys, or reuses the id of a different record
(7 and "7" are one id; the first one is indexed), does not stop the run. Nor does an
empty or non-UTF-8 text file. Each goes to the rejects file (--rejects), one JSON
object a line: "where" (FILE:LINE, lines numbered from 1 as an editor does, CRLF
files too), "line_number", "id", "reason", "empty" and "line" (the line as read,
bytes that are not UTF-8 shown as \\xNN). The run ends with their count (exit
status 0); fix them and run the same command again.

The collection is created with three branches: dense, SPLADE and BM25 (--no-bm25:
dense and SPLADE only). An existing collection keeps the branches it was created
with; one without BM25 can be given it only by indexing into a new --collection.

With --strict, the first such record stops the run (exit status 1, the error names
FILE:LINE and the reason) and nothing is written: every record is checked before a
model loads, and, when records are chunked, their chunk ids once more after.
"""


def add_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "index",
        parents=parents,
        help="index a BEIR folder, a JSON-lines file or a folder of .txt/.md files",
        description="Index documents into a collection (created on first use).",
        epilog=SOURCE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", type=Path, metavar="SOURCE", help="what to index (see below)")
    add_collection_option(parser, what="index into")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help="documents encoded and written at a time (default: %(default)s)",
    )
    parser.add_argument(
        "--rejects",
        type=Path,
        metavar="FILE",
        help="where records that cannot be indexed are written, one JSON object a line "
        "(default: ./rejects-COLLECTION.jsonl; written only when a record is rejected)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse the whole source if any record cannot be indexed: the first one "
        "stops the run, and nothing is written (see below)",
    )
    parser.add_argument(
        "--no-chunking",
        action="store_true",
        help="index long text files and JSON-lines records whole (see below)",
    )
    parser.add_argument(
        "--no-bm25",
        action="store_true",
        help="create the collection without the BM25 branch (dense and SPLADE only)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_location_options(parser, default=LOCATION_HELP)
    add_model_options(parser)
    add_tenant_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    args.collection = args.collection or collection_name(args.source.resolve().name)
    source = open_source(args.source)
    # Every record is read and checked once before any model loads, by the checks the
    # write path makes: --strict stops at the first bad one, otherwise the bad ones are
    # counted now and written down as they are met, and nothing stops the run half way.
    if args.strict:
        total, bad = source.scan(), 0
    else:
        total, bad = source.survey()
    rejects_path = args.rejects or Path(f"rejects-{args.collection}.jsonl")
    if bad:
        print(
            f"{bad} record{'s' if bad != 1 else ''} of {args.source} cannot be indexed; "
            f"{'they go' if bad != 1 else 'it goes'} to {rejects_path} and the rest is indexed."
        )
    from hybrid_retriever.cli.indexing import (
        RejectsFile,
        index_resumable,
        warm_up,
    )
    from hybrid_retriever.encoders.bm25 import Bm25Encoder
    from hybrid_retriever.retriever import HybridRetriever

    rejects = RejectsFile(rejects_path)
    retriever = HybridRetriever(**retriever_arguments(args, collection=args.collection))
    try:
        warm_up(retriever)
        chunker = None
        if source.kind is not SourceKind.BEIR and not args.no_chunking:
            from hybrid_retriever.chunking import Chunker

            chunker = Chunker.for_encoders(retriever.dense_encoder, retriever.sparse_encoder)
        split = None if chunker is None else chunker.split
        documents: Iterator[Document]
        if args.strict:
            if split is not None:
                # Chunk ids ("<id>#<n>") may meet another record's id: checked in full too,
                # so that --strict still writes nothing when a record is refused.
                for _ in source.strict(split):
                    pass
            documents = source.strict(split)
        else:
            documents = rejects.keep_documents(source.checked(split))
        stats = index_resumable(
            retriever,
            documents,
            total=None if chunker is not None else total,
            batch_size=args.batch_size,
            show_progress=not args.no_progress,
        )
        where = repr(retriever.storage)
        has_bm25 = isinstance(retriever.bm25_encoder, Bm25Encoder)
    finally:
        retriever.close()
        rejects.close()
    pieces = (
        f"{plural(total, 'document')} as {plural(stats.read, 'passage')}"
        if chunker is not None
        else plural(stats.read, "document")
    )
    print(
        f"Indexed {pieces} from {args.source} ({source.kind.value}) into "
        f"collection {args.collection!r} in {where}: {stats.written} written, "
        f"{stats.unchanged} already stored unchanged; {plural(stats.points, 'point')} in "
        f"the collection. {stats.seconds:.1f} s, {stats.docs_per_second:.1f} docs/s."
    )
    print(
        "Branches: dense, sparse, bm25."
        if has_bm25
        else "Branches: dense, sparse (no BM25: the collection was created without it, with "
        "--no-bm25 or before BM25 was a default; index into a new --collection to get it)."
    )
    if rejects.count:
        print(
            f"Rejected {rejects.count} record{'s' if rejects.count != 1 else ''}, not indexed: "
            f"see {rejects_path} (place, reason and line of each); fix them and run the same "
            "command again."
        )
    return 0
