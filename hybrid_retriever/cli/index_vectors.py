"""``hybrid-retriever index-vectors``: write documents whose vectors were computed elsewhere.

A separate command rather than a flag of ``index``: nothing is encoded or chunked (the
vectors are of the text as given), the models must be named, and each line carries more
to check (``hybrid_retriever/precomputed.py``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybrid_retriever.cli.common import (
    LOCATION_HELP,
    add_collection_option,
    add_location_options,
    collection_name,
    positive_int,
    retriever_arguments,
)
from hybrid_retriever.errors import (
    CollectionMismatchError,
    DuplicateIdError,
    InvalidDocumentError,
    InvalidParameterError,
)
from hybrid_retriever.precomputed import DEFAULT_EMBEDDED_BATCH_SIZE
from hybrid_retriever.quirks import plural

if TYPE_CHECKING:
    from hybrid_retriever.precomputed import EmbeddedWriter, PreparedEmbedded
    from hybrid_retriever.sources import Rejected

VECTOR_KEYS = ("dense", "sparse", "bm25")
PARQUET_SUFFIX = ".parquet"
FORMAT_HELP = """\
the file (.jsonl, .jsonl.gz, .ndjson), one JSON object a line:
  {"id": "doc-1", "text": "...", "metadata": {"topic": "x"},
   "dense": [0.013, -0.094, ...],
   "sparse": {"indices": [1012, 2054, ...], "values": [0.82, 1.31, ...]}}

  text      the document's text, exactly what the vectors were computed from
  dense     the dense model's document vector (as many floats as its dimension)
  sparse    the SPLADE model's document vector: vocabulary token ids and weights
  id / _id  optional: the document's id (without one, an id is derived from the text
            and metadata); metadata: optional object; other keys become metadata too
  bm25      optional, for collections with a BM25 branch: computed from the text
            when absent (as add_documents does)

--dense-model and --sparse-model name the models that computed the vectors: they are
checked against the collection's record of its models (a new collection records
them), and the models load once here to record their fingerprints and to know the
SPLADE vocabulary; queries will be encoded with them.

A Parquet file (.parquet; needs pyarrow) has the same columns: dense a list of floats,
sparse a struct of indices and values lists, metadata a struct or a JSON string; rows
are numbered from 1 in rejects (FILE:ROW).

Each line is checked before it is written: JSON as `index` reads it, the write path's
document checks, the dense vector's dimension, sparse indices (integers, each once,
within the SPLADE vocabulary), no NaN, infinity or all-zero vector, and no id of a
different earlier line. A line that fails goes to the rejects file (--rejects; where,
line_number, id, reason, line) and does not stop the run; --strict refuses the whole
file at the first one, with nothing written. Running again rewrites the same points
(ids decide them): nothing is duplicated.
"""


def add_parser(subparsers: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "index-vectors",
        parents=parents,
        help="write documents with their vectors computed elsewhere (JSON lines)",
        description="Write documents whose dense and SPLADE vectors were computed elsewhere "
        "(a GPU box, a batch job) into a collection, without encoding them.",
        epilog=FORMAT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source", type=Path, metavar="FILE", help="the JSON-lines (or Parquet) file"
    )
    add_collection_option(parser, what="write into")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_EMBEDDED_BATCH_SIZE,
        metavar="N",
        help="documents checked and written at a time (default: %(default)s)",
    )
    parser.add_argument(
        "--rejects",
        type=Path,
        metavar="FILE",
        help="where lines that cannot be written go, one JSON object a line "
        "(default: ./rejects-COLLECTION.jsonl; written only when a line is rejected)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse the whole file if any line cannot be written; nothing is written",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_location_options(parser, default=LOCATION_HELP)
    models = parser.add_argument_group("models (required: those that computed the vectors)")
    models.add_argument(
        "--dense-model",
        required=True,
        metavar="NAME",
        help="the dense model, e.g. all-MiniLM-L6-v2",
    )
    models.add_argument(
        "--sparse-model", required=True, metavar="NAME", help="the SPLADE model, e.g. splade-tiny"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from hybrid_retriever.cli.indexing import RejectsFile
    from hybrid_retriever.retriever import HybridRetriever
    from hybrid_retriever.sources import SourceNotFoundError

    if not args.source.is_file():
        raise SourceNotFoundError(f"{args.source} is not a file of JSON lines.")
    name = args.source.name
    if name.lower().endswith(PARQUET_SUFFIX):
        name = name[: -len(PARQUET_SUFFIX)]
    args.collection = args.collection or collection_name(name)
    rejects_path = args.rejects or Path(f"rejects-{args.collection}.jsonl")
    retriever = HybridRetriever(**retriever_arguments(args, collection=args.collection))
    rejects = RejectsFile(rejects_path)
    try:
        writer = retriever.embedded_writer(
            dense_model=args.dense_model, sparse_model=args.sparse_model
        )
        writer.rules()  # the models first: a mismatch concerns every line
        if args.strict:
            for _ in strict_lines(args.source, writer):
                pass
            prepared = strict_lines(args.source, writer)
        else:
            prepared = kept(vector_lines(args.source, writer), rejects)
        start = time.perf_counter()
        written = writer.write_prepared(
            prepared, batch_size=args.batch_size, show_progress=not args.no_progress
        )
        seconds = time.perf_counter() - start
        points = retriever.count() if written else 0
        where = repr(retriever.storage)
    finally:
        retriever.close()
        rejects.close()
    rate = len(written) / seconds if seconds > 0 else 0.0
    print(
        f"Wrote {plural(len(written), 'document')} with their vectors from {args.source} into "
        f"collection {args.collection!r} in {where}; {plural(points, 'point')} in the "
        f"collection. {seconds:.1f} s, {rate:.0f} docs/s."
    )
    if rejects.count:
        print(
            f"Rejected {plural(rejects.count, 'line')}, not written: see {rejects_path} (place, "
            "reason and line of each); fix them and run the same command again."
        )
    return 0


def vector_lines(path: Path, writer: EmbeddedWriter) -> Iterator[PreparedEmbedded | Rejected]:
    """Each line as a checked document ready to write, or a ``Rejected`` saying why not
    (where, the line as read); a line reusing the id of a different earlier line is
    rejected, the first kept."""
    from hybrid_retriever.precomputed import payload_fingerprint
    from hybrid_retriever.sources import Rejected, jsonl_lines

    seen: dict[str, tuple[int, str]] = {}
    rows = (
        parquet_rows(path)
        if path.name.lower().endswith(PARQUET_SUFFIX)
        else jsonl_lines(path, strict_json=True)
    )
    for line_number, line, record in rows:
        where = f"{path}:{line_number}"
        if isinstance(record, InvalidDocumentError):
            yield Rejected(record, where, line, line_number=line_number)
            continue
        own_id = record.get("id", record.get("_id"))
        readable = None if own_id is None else str(own_id)
        try:
            ready = writer.prepare_one(_embedded(record, where), where)
            fingerprint = payload_fingerprint(ready.prepared.payload)
            earlier = seen.get(ready.prepared.point_id)
            if earlier is not None and earlier[0] != fingerprint:
                raise DuplicateIdError(
                    f"{where}: id {own_id!r} is already the id of a different line "
                    f'({earlier[1]}); ids are compared as text (7 and "7" are one id). Give '
                    "each line its own id; the first one is written."
                )
        except CollectionMismatchError as exc:  # a wrong dimension: this line's fault
            yield Rejected(InvalidDocumentError(str(exc)), where, line, readable, line_number)
            continue
        except InvalidDocumentError as exc:
            yield Rejected(exc, where, line, readable, line_number)
            continue
        seen.setdefault(ready.prepared.point_id, (fingerprint, where))
        yield ready


def parquet_rows(
    path: Path,
) -> Iterator[tuple[int, str | None, dict[str, Any] | InvalidDocumentError]]:
    """``(row number from 1, None, the row as a dict)`` per row of a Parquet file, read a
    record batch at a time; ``metadata`` may be a struct or a JSON object as a string.
    Needs pyarrow (not a dependency of this package)."""
    import json

    try:
        import pyarrow.parquet as parquet  # type: ignore[import-untyped]
    except ImportError:
        raise InvalidParameterError(
            f"Reading {path} needs pyarrow, which is not installed: pip install pyarrow, "
            "or write the vectors as JSON lines (see --help)."
        ) from None
    number = 0
    for batch in parquet.ParquetFile(path).iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            number += 1
            metadata = record.get("metadata")
            if isinstance(metadata, str):
                try:
                    record["metadata"] = json.loads(metadata)
                except json.JSONDecodeError as exc:
                    yield (
                        number,
                        None,
                        InvalidDocumentError(
                            f"{path}:{number}: 'metadata' is a string but not JSON ({exc.msg})."
                        ),
                    )
                    continue
            yield number, None, record


def strict_lines(path: Path, writer: EmbeddedWriter) -> Iterator[PreparedEmbedded]:
    """:func:`vector_lines`, raising at the first line that cannot be written."""
    from hybrid_retriever.sources import Rejected

    for entry in vector_lines(path, writer):
        if isinstance(entry, Rejected):
            raise entry.error
        yield entry


def kept(
    entries: Iterator[PreparedEmbedded | Rejected], rejects: Any
) -> Iterator[PreparedEmbedded]:
    """The documents among ``entries``; each rejected line is written down."""
    from hybrid_retriever.sources import Rejected

    for entry in entries:
        if isinstance(entry, Rejected):
            rejects.write(entry)
        else:
            yield entry


def _embedded(record: dict[str, Any], where: str) -> Any:
    from hybrid_retriever.precomputed import EmbeddedDocument

    text = record.get("text")
    if not isinstance(text, str):
        raise InvalidDocumentError(
            f"{where}: the line needs a 'text' string (what the vectors were computed from)"
            + ("." if text is None else f", got {text!r:.40}.")
        )
    missing = [key for key in ("dense", "sparse") if key not in record]
    if missing:
        raise InvalidDocumentError(
            f"{where}: the line has no {' and no '.join(repr(k) for k in missing)} vector; "
            'give "dense": [floats] and "sparse": {"indices": [...], "values": [...]}.'
        )
    own = record.get("metadata")
    if own is not None and not isinstance(own, dict):
        raise InvalidDocumentError(
            f"{where}: 'metadata' is a {type(own).__name__}; it must be a JSON object."
        )
    skip = {"id", "_id", "text", "metadata", *VECTOR_KEYS}
    extra = {key: value for key, value in record.items() if key not in skip}
    doc_id = record.get("id", record.get("_id"))
    return EmbeddedDocument(
        page_content=text,
        dense=record["dense"],
        sparse=record["sparse"],
        metadata={**extra, **(own or {})},
        id=doc_id,
        bm25=record.get("bm25"),
    )
