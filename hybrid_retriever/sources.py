"""What ``hybrid-retriever index`` reads: a BEIR folder, a JSON-lines file or text files.

* a **BEIR dataset folder** (``corpus.jsonl`` or ``corpus.jsonl.gz`` inside): each record's
  ``_id``, ``title`` and ``text``, encoded as ``title + " " + text`` as BEIR does;
* a **JSON-lines file** (``.jsonl``, ``.jsonl.gz``, ``.ndjson``): one object per line with
  ``text``, and optionally ``_id`` or ``id``, ``title`` (prepended to the text, as BEIR does)
  and ``metadata`` (an object). Any other top-level key is kept as metadata too, so
  ``{"text": ..., "topic": "cooking"}`` can be filtered on ``metadata.topic``;
* a **folder of** ``.txt`` / ``.md`` **files** (searched recursively, in sorted order) or one
  such file: the file's text, with its path relative to the folder as id.

Every document's own id is kept in its metadata under :data:`DOC_ID_KEY` (the point id
is a uuid5 of it, see :mod:`hybrid_retriever.documents`), so results and evaluation
runs can name documents the way the source does.

Sources are streamed, never loaded whole. :meth:`Source.scan` is a cheap first pass
that counts the documents and validates every record, so that a malformed line
near the end of a large file is reported before hours of encoding, not after.
:meth:`Source.entries` is the lenient reading: a record that cannot be indexed comes
out as a :class:`Rejected` (where, why, the line as read) instead of stopping the
stream, so a long job can go on and still account for every record.

Files may start with a UTF-8 byte-order mark and end lines with CRLF, as files
written on Windows do; both are read as plain UTF-8 lines.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO, Any

from langchain_core.documents import Document

from hybrid_retriever.errors import EmptyDocumentError, HybridRetrieverError, InvalidDocumentError
from hybrid_retriever.metadata_keys import DOC_ID_KEY as DOC_ID_KEY  # re-exported

BEIR_CORPUS_FILES = ("corpus.jsonl", "corpus.jsonl.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
TEXT_SUFFIXES = (".txt", ".md")


class SourceNotFoundError(HybridRetrieverError, FileNotFoundError):
    """A path to read documents, queries or judgements from is missing or of no known kind.

    Also a ``FileNotFoundError``, so callers that caught that before keep working.
    """


class SourceKind(str, Enum):
    """How a source path is read (see the module docstring)."""

    BEIR = "beir"
    JSONL = "jsonl"
    TEXT = "text"


# -- JSON lines ----------------------------------------------------------------------------------


def open_text(path: Path, *, newline: str | None = None) -> IO[str]:
    """A UTF-8 text handle, transparently gunzipped for ``.gz`` files; a leading
    byte-order mark is dropped (``utf-8-sig``), so the first record parses."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=newline)
    return path.open(encoding="utf-8-sig", newline=newline)


def jsonl_lines(path: Path) -> Iterator[tuple[int, str, dict[str, Any] | InvalidDocumentError]]:
    """``(line number, line, object or the error saying why it is not one)`` per non-blank
    line. A file that cannot be read at all (not UTF-8, broken gzip) still raises."""
    line_number = 0
    try:
        with open_text(path) as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield (
                        line_number,
                        line,
                        InvalidDocumentError(f"{path}:{line_number}: not valid JSON ({exc.msg})."),
                    )
                    continue
                if not isinstance(record, dict):
                    yield (
                        line_number,
                        line,
                        InvalidDocumentError(
                            f"{path}:{line_number}: expected a JSON object, "
                            f"got {type(record).__name__}."
                        ),
                    )
                    continue
                yield line_number, line, record
    except UnicodeDecodeError as exc:
        raise InvalidDocumentError(
            f"{path}:{line_number + 1}: not UTF-8 text ({exc.reason})."
        ) from exc
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise InvalidDocumentError(f"{path}: cannot be read ({exc}).") from exc


def numbered_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line; errors name the file and line."""
    for line_number, _, record in jsonl_lines(path):
        if isinstance(record, InvalidDocumentError):
            raise record
        yield line_number, record


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSON-lines file (optionally gzipped); errors name the file and line."""
    for _, record in numbered_jsonl(path):
        yield record


def _record_id(record: dict[str, Any], where: str, *, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = record.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            raise InvalidDocumentError(
                f"{where}: {key!r} is {value!r}; an id must be a non-empty string or an integer."
            )
        return str(value)
    return None


def _optional_str(record: dict[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidDocumentError(
            f"{where}: {key!r} is a {type(value).__name__}; it must be a string."
        )
    return value.strip()


def beir_document(record: dict[str, Any], where: str) -> Document:
    """One BEIR corpus record: text is ``title + " " + text``, metadata the id and title."""
    doc_id = _record_id(record, where, keys=("_id",))
    if doc_id is None:
        raise InvalidDocumentError(f"{where}: the record has no '_id'.")
    title = _optional_str(record, "title", where)
    text = f"{title} {_optional_str(record, 'text', where)}".strip()
    if not text:
        raise EmptyDocumentError(f"{where}: document {doc_id!r} has neither title nor text.")
    return Document(id=doc_id, page_content=text, metadata={DOC_ID_KEY: doc_id, "title": title})


def jsonl_document(record: dict[str, Any], where: str) -> Document:
    """One record of a JSON-lines source (see the module docstring for the fields)."""
    doc_id = _record_id(record, where, keys=("_id", "id"))
    body = record.get("text")
    if isinstance(body, str) and not body.strip():
        raise EmptyDocumentError(
            f"{where}: the record needs a non-empty 'text' string, got {body!r:.40}."
        )
    if not isinstance(body, str):
        raise InvalidDocumentError(
            f"{where}: the record needs a non-empty 'text' string"
            + ("." if body is None else f", got {body!r:.40}.")
        )
    title = _optional_str(record, "title", where)
    own = record.get("metadata")
    if own is not None and not isinstance(own, dict):
        raise InvalidDocumentError(
            f"{where}: 'metadata' is a {type(own).__name__}; it must be a JSON object."
        )
    extra = {k: v for k, v in record.items() if k not in {"_id", "id", "text", "title", "metadata"}}
    metadata = {**extra, **(own or {})}
    if title:
        metadata["title"] = title
    if doc_id is not None:
        metadata[DOC_ID_KEY] = doc_id
    return Document(id=doc_id, page_content=f"{title} {body.strip()}".strip(), metadata=metadata)


# -- text files ----------------------------------------------------------------------------------


def _text_files(root: Path) -> Iterator[Path]:
    """``.txt`` / ``.md`` files under ``root``, recursively, in a stable (sorted) order."""
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(TEXT_SUFFIXES) and not name.startswith("."):
                yield Path(folder) / name


def _text_document(path: Path, doc_id: str) -> Document | None:
    """The file's text as a Document, or None when it is empty (nothing to retrieve)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidDocumentError(f"{path}: not UTF-8 text ({exc.reason}).") from exc
    if not text.strip():
        return None
    return Document(id=doc_id, page_content=text.strip(), metadata={DOC_ID_KEY: doc_id})


# -- sources -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    """A record that cannot be indexed: kept with where it is and why, never dropped silently."""

    error: InvalidDocumentError
    """The error strict reading raises; its message names the file and line."""
    where: str
    """``path:line`` for JSON lines, the file's path for text files."""
    line: str | None = field(default=None, repr=False)
    """The line as read (JSON lines), so that it can be fixed and indexed again."""
    doc_id: str | None = None
    """The record's id where it has a readable one."""

    @property
    def empty(self) -> bool:
        """Nothing to index (no text), rather than malformed."""
        return isinstance(self.error, EmptyDocumentError)

    @property
    def reason(self) -> str:
        return str(self.error)

    def to_json(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "id": self.doc_id,
            "reason": self.reason,
            "empty": self.empty,
            "line": None if self.line is None else self.line.rstrip("\r\n"),
        }


@dataclass(frozen=True)
class Source:
    """Documents to index, streamed from ``path`` (build one with :func:`open_source`)."""

    path: Path
    """The file to read: ``corpus.jsonl[.gz]`` for BEIR, the folder for text files."""
    kind: SourceKind

    def __iter__(self) -> Iterator[Document]:
        """Every document; the first record that cannot be indexed raises (empty text
        files excepted: they are skipped, having nothing to find)."""
        for entry in self.entries():
            if isinstance(entry, Rejected):
                if entry.empty and self.kind is SourceKind.TEXT:
                    continue
                raise entry.error
            yield entry

    def entries(self) -> Iterator[Document | Rejected]:
        """Every record in order: a Document, or a :class:`Rejected` saying why not."""
        if self.kind is SourceKind.TEXT:
            for path, doc_id in self._text_paths():
                try:
                    document = _text_document(path, doc_id)
                except InvalidDocumentError as exc:
                    yield Rejected(exc, str(path), doc_id=doc_id)
                    continue
                if document is None:
                    empty = EmptyDocumentError(f"{path}: the file is empty or whitespace only.")
                    yield Rejected(empty, str(path), doc_id=doc_id)
                else:
                    yield document
            return
        convert = beir_document if self.kind is SourceKind.BEIR else jsonl_document
        for line_number, line, record in jsonl_lines(self.path):
            where = f"{self.path}:{line_number}"
            if isinstance(record, InvalidDocumentError):
                yield Rejected(record, where, line=line)
                continue
            try:
                yield convert(record, where)
            except InvalidDocumentError as exc:
                own_id = record.get("_id", record.get("id"))
                yield Rejected(
                    exc, where, line=line, doc_id=None if own_id is None else str(own_id)
                )

    def survey(self) -> tuple[int, int]:
        """``(documents, rejected records)``: :meth:`scan` that counts instead of raising."""
        if self.kind is SourceKind.TEXT:
            return self.scan(), 0
        counts = [0, 0]
        for entry in self.entries():
            counts[isinstance(entry, Rejected)] += 1
        return counts[0], counts[1]

    def scan(self) -> int:
        """Count the documents, validating every record, without keeping any.

        Text files are only listed, not read: reading them twice would double the I/O
        (so a file holding only whitespace is counted, then skipped when read).
        """
        if self.kind is SourceKind.TEXT:
            return sum(1 for path, _ in self._text_paths() if path.stat().st_size > 0)
        return sum(1 for _ in self)

    def _text_paths(self) -> Iterator[tuple[Path, str]]:
        if self.path.is_file():
            yield self.path, self.path.name
            return
        for path in _text_files(self.path):
            yield path, path.relative_to(self.path).as_posix()


def open_source(path: str | Path) -> Source:
    """The source at ``path``, its kind told from what is there (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError(f"{path} does not exist.")
    if path.is_dir():
        for name in BEIR_CORPUS_FILES:
            if (path / name).is_file():
                return Source(path / name, SourceKind.BEIR)
        if next(_text_files(path), None) is None:
            raise SourceNotFoundError(
                f"{path} is a folder with neither {' nor '.join(BEIR_CORPUS_FILES)} (a BEIR "
                f"dataset) nor any {' or '.join(TEXT_SUFFIXES)} files."
            )
        return Source(path, SourceKind.TEXT)
    name = path.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        return Source(path, SourceKind.JSONL)
    if name.endswith(TEXT_SUFFIXES):
        return Source(path, SourceKind.TEXT)
    raise SourceNotFoundError(
        f"{path} is not a source this tool reads: give a BEIR dataset folder, a JSON-lines "
        f"file ({', '.join(JSONL_SUFFIXES)}) or a folder of {' / '.join(TEXT_SUFFIXES)} files."
    )
