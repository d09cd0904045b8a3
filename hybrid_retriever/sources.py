"""What ``hybrid-retriever index`` reads: a BEIR folder, a JSON-lines file or text files.

* a **BEIR dataset folder** (``corpus.jsonl`` or ``corpus.jsonl.gz`` inside): each record's
  ``_id``, ``title`` and ``text``, encoded as ``title + " " + text`` as BEIR does;
* a **JSON-lines file** (``.jsonl``, ``.jsonl.gz``, ``.ndjson``): one object per line with
  ``text``, and optionally ``_id`` or ``id``, ``title`` (prepended to the text, as BEIR does)
  and ``metadata`` (an object). Any other top-level key is kept as metadata too, so
  ``{"text": ..., "topic": "cooking"}`` can be filtered on ``metadata.topic``;
* a **folder of** ``.txt`` / ``.md`` **files** (searched recursively, in sorted order) or one
  such file: the file's text, with its path relative to the folder as id, and as
  metadata :data:`SOURCE_KEY` (that path) and :data:`FOLDER_KEY` (its folder), to filter on.

Every document's own id is kept in its metadata under :data:`DOC_ID_KEY` (the point id
is a uuid5 of it, see :mod:`hybrid_retriever.documents`), so results and evaluation
runs can name documents the way the source does.

Sources are streamed, never loaded whole. JSON lines are read as bytes and split at
``\n`` only, so that line numbers are an editor's (CRLF files too) and each line is
decoded on its own: one bad byte concerns one line, not the file. Each record is
checked by :func:`validated`, which is the write path's own check
(:func:`hybrid_retriever.documents.prepare_document`), and :meth:`Source.checked` adds
the one check that spans records, an id met before on a different record; so a source
that passes the cheap first pass (:meth:`Source.scan`, :meth:`Source.survey`) never stops
a run half way. The lenient reading gives a record that cannot be indexed as a
:class:`Rejected` (where, why, the line as read) instead of stopping the stream, so a long
job can go on and still account for every record.

Files may start with a UTF-8 byte-order mark and end lines with CRLF, as files
written on Windows do; both are read as plain UTF-8 lines.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO, Any

from langchain_core.documents import Document

from hybrid_retriever.documents import PreparedDocument, prepare_document
from hybrid_retriever.errors import (
    DuplicateIdError,
    EmptyDocumentError,
    HybridRetrieverError,
    InvalidDocumentError,
)
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

BYTE_ORDER_MARK = b"\xef\xbb\xbf"


def open_text(path: Path, *, newline: str | None = None) -> IO[str]:
    """A UTF-8 text handle, transparently gunzipped for ``.gz`` files; a leading
    byte-order mark is dropped (``utf-8-sig``), so the first record parses."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=newline)
    return path.open(encoding="utf-8-sig", newline=newline)


def _open_bytes(path: Path) -> gzip.GzipFile | IO[bytes]:
    """A binary handle, transparently gunzipped for ``.gz`` files."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def physical_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes)`` per line, split at ``\n`` only and numbered from 1 as an
    editor numbers them; the line ending (``\n`` or ``\r\n``) and a byte-order mark that
    starts the file are removed. Read as bytes, so that each line is decoded on its own
    and one bad byte concerns one line. A file that cannot be read (broken gzip) raises."""
    line_number = 0
    try:
        with _open_bytes(path) as handle:
            for line_number, raw in enumerate(handle, start=1):
                if line_number == 1 and raw.startswith(BYTE_ORDER_MARK):
                    raw = raw[len(BYTE_ORDER_MARK) :]
                if raw.endswith(b"\n"):
                    raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
                yield line_number, raw
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        after = f" after line {line_number}" if line_number else ""
        raise InvalidDocumentError(
            f"{path}: cannot be read{after} ({exc}); the lines after that point are unknown, "
            "so nothing is indexed from it. Recompress or re-export the file."
        ) from exc


class _RefusedJson(ValueError):
    """Accepted by Python's ``json`` but not JSON, or not storable as read."""


def _refuse_constant(name: str) -> Any:
    raise _RefusedJson(
        f"{name} is not JSON (JSON has no NaN or Infinity, and no engine stores them); "
        "write null or a number"
    )


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _RefusedJson(
            f"the number {text[:40]} is too large for a 64-bit float (it would be read as "
            "infinity); write it as a string"
        )
    return number


def _object_without_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RefusedJson(
                    f"the key {key!r} appears twice in one object (readers disagree on which "
                    "one counts); keep one"
                )
            seen.add(key)
    return record


def _lone_surrogate(record: Any) -> str | None:
    """Where ``record`` holds a string with a lone surrogate (from an escape such as
    ``"\\ud800"``, which no UTF-8 text can hold), or None. Iterative: no depth limit."""
    stack: list[tuple[str, Any]] = [("the record", record)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not _is_unicode(value):
                return path
        elif isinstance(value, dict):
            for key, item in value.items():
                if not _is_unicode(key):
                    return f"a key of {path}"
                stack.append((f"{path}[{key!r}]" if path != "the record" else repr(key), item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_record(
    raw: bytes, where: str, *, strict_json: bool = True
) -> dict[str, Any] | InvalidDocumentError:
    """One JSON-lines line as an object, or the error saying why it is not one.

    With ``strict_json``, stricter than ``json.loads``, which accepts what no other JSON
    reader does or what cannot be stored as read: ``NaN`` / ``Infinity`` literals, numbers
    that overflow to infinity, a key repeated in one object, and lone surrogate escapes
    (``"\\ud800"``). Without, as ``json.loads`` reads it: BEIR files are read as BEIR's
    own loader reads them (their fields that are stored are checked afterwards).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InvalidDocumentError(
            f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} "
            "of the line); save the file as UTF-8 or fix this line."
        )
    strictly: dict[str, Any] = {
        "parse_constant": _refuse_constant,
        "parse_float": _finite_float,
        "object_pairs_hook": _object_without_repeated_keys,
    }
    try:
        record = json.loads(text, **(strictly if strict_json else {}))
    except json.JSONDecodeError as exc:
        return InvalidDocumentError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}).")
    except _RefusedJson as exc:
        return InvalidDocumentError(f"{where}: {exc}.")
    except RecursionError:
        return InvalidDocumentError(
            f"{where}: nested too deeply to read; metadata this deep cannot be stored either."
        )
    if not isinstance(record, dict):
        return InvalidDocumentError(f"{where}: expected a JSON object, got {_json_type(record)}.")
    if strict_json and "\\u" in text and (bad := _lone_surrogate(record)) is not None:
        return InvalidDocumentError(
            f"{where}: {bad} holds a lone surrogate escape (\\ud800 to \\udfff without its "
            "pair), which is not Unicode text and cannot be stored; fix or drop it."
        )
    return record


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def jsonl_lines(
    path: Path, *, strict_json: bool = False
) -> Iterator[tuple[int, str, dict[str, Any] | InvalidDocumentError]]:
    """``(line number, line, object or the error saying why it is not one)`` per non-blank
    line, numbered as an editor numbers lines. Each line is decoded on its own, so a line
    that is not UTF-8 is one error (its text then shows the bad bytes as ``\\xNN``); a
    file that cannot be read at all (broken gzip) still raises. ``strict_json``: see
    :func:`parse_record`."""
    for line_number, raw in physical_lines(path):
        if not raw.strip():
            continue
        record = parse_record(raw, f"{path}:{line_number}", strict_json=strict_json)
        yield line_number, raw.decode("utf-8", errors="backslashreplace"), record


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

SOURCE_KEY = "source"
"""Metadata key of a text file: its path relative to the indexed folder, with forward
slashes (``guides/setup.md``), the key LangChain's document loaders use."""
FOLDER_KEY = "folder"
"""Metadata key of a text file: its folder relative to the indexed folder (``guides``;
``""`` at the top), so that a search can be limited to one folder."""


def _text_files(root: Path) -> Iterator[Path]:
    """``.txt`` / ``.md`` files under ``root``, recursively, in a stable (sorted) order."""
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(TEXT_SUFFIXES) and not name.startswith("."):
                yield Path(folder) / name


def _text_document(path: Path, relative: str) -> Document | None:
    """The file's text as a Document (id: its relative path), or None when it is empty
    (nothing to retrieve). A leading byte-order mark is not part of the text."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidDocumentError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at byte "
            f"{exc.start + 1}); save it as UTF-8."
        ) from exc
    if not text.strip():
        return None
    folder = relative.rpartition("/")[0]
    metadata = {DOC_ID_KEY: relative, SOURCE_KEY: relative, FOLDER_KEY: folder}
    return Document(id=relative, page_content=text.strip(), metadata=metadata)


# -- validation ----------------------------------------------------------------------------------


def validated(document: Document, where: str) -> PreparedDocument:
    """``document`` checked exactly as the write path checks it (one function,
    :func:`hybrid_retriever.documents.prepare_document`, so that a record that passes here
    never stops a run half way); its errors name ``where`` instead of a position."""
    try:
        return prepare_document(document.page_content, document.metadata, document.id, position=0)
    except InvalidDocumentError as exc:
        message = str(exc).replace("Document at position 0", "the document", 1)
        raise type(exc)(f"{where}: {message}") from None


class IdRegister:
    """The ids met so far in one pass, so that two different records with one id are
    caught where the second is read: the write path refuses them (one would silently
    replace the other). A record repeated verbatim is no clash (it is written once)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, str]] = {}

    def admit(self, documents: list[Document], where: str) -> None:
        """Check ``documents`` (one record, or its chunks) and remember their ids; nothing
        is remembered when one of them is refused."""
        prepared = [validated(document, where) for document in documents]
        fingerprints = []
        for document, ready in zip(documents, prepared, strict=True):
            fingerprint = hash(json.dumps(ready.payload, sort_keys=True, ensure_ascii=False))
            earlier = self._seen.get(ready.point_id)
            if earlier is not None and earlier[0] != fingerprint:
                raise DuplicateIdError(
                    f"{where}: id {document.id!r} is already the id of a different record "
                    f'({earlier[1]}); ids are compared as text (7 and "7" are one id). '
                    "Give each record its own id; the first one is indexed."
                )
            fingerprints.append((ready.point_id, fingerprint))
        for point, fingerprint in fingerprints:
            self._seen.setdefault(point, (fingerprint, where))


# -- sources -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    """A record that cannot be indexed: kept with where it is and why, never dropped silently."""

    error: InvalidDocumentError
    """The error strict reading raises; its message names the file and line."""
    where: str
    """``path:line`` for JSON lines, the file's path for text files."""
    line: str | None = field(default=None, repr=False)
    """The line as read (JSON lines), so that it can be fixed and indexed again; bytes
    that are not UTF-8 appear as ``\\xNN``."""
    doc_id: str | None = None
    """The record's id where it has a readable one."""
    line_number: int | None = None
    """The line's number in its file, from 1, as an editor numbers lines (JSON lines)."""

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
            "line_number": self.line_number,
            "id": self.doc_id,
            "reason": self.reason,
            "empty": self.empty,
            "line": None if self.line is None else self.line.rstrip("\r\n"),
        }


@dataclass(frozen=True)
class SourceRecord:
    """One record as read: where it is, its line (JSON lines) and what it gave."""

    where: str
    line_number: int | None
    line: str | None
    entry: Document | Rejected

    def rejected(self, error: InvalidDocumentError) -> Rejected:
        """This record, refused for ``error``."""
        document = self.entry if isinstance(self.entry, Document) else None
        doc_id = None if document is None or document.id is None else str(document.id)
        return Rejected(error, self.where, self.line, doc_id, self.line_number)


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
                if skippable(entry, self.kind):
                    continue
                raise entry.error
            yield entry

    def entries(self) -> Iterator[Document | Rejected]:
        """Every record in order: a Document, or a :class:`Rejected` saying why not.
        Each is checked on its own (ids repeated across records are left to the caller:
        see :meth:`checked`)."""
        for record in self.records():
            yield record.entry

    def records(self) -> Iterator[SourceRecord]:
        """Every record in order, with where it is; each document passed :func:`validated`."""
        if self.kind is SourceKind.TEXT:
            for path, relative in self._text_paths():
                where = str(path)
                try:
                    document = _text_document(path, relative)
                    if document is not None:
                        validated(document, where)
                except InvalidDocumentError as exc:
                    yield SourceRecord(where, None, None, Rejected(exc, where, doc_id=relative))
                    continue
                if document is None:
                    empty = EmptyDocumentError(f"{path}: the file is empty or whitespace only.")
                    yield SourceRecord(where, None, None, Rejected(empty, where, doc_id=relative))
                else:
                    yield SourceRecord(where, None, None, document)
            return
        convert = beir_document if self.kind is SourceKind.BEIR else jsonl_document
        # A JSON-lines file is stored as read (every key is metadata): strict JSON. A BEIR
        # corpus is read as BEIR reads it; only its _id, title and text are used.
        strict_json = self.kind is SourceKind.JSONL
        for line_number, line, record in jsonl_lines(self.path, strict_json=strict_json):
            where = f"{self.path}:{line_number}"
            if isinstance(record, InvalidDocumentError):
                rejected = Rejected(record, where, line, line_number=line_number)
                yield SourceRecord(where, line_number, line, rejected)
                continue
            try:
                document = convert(record, where)
                validated(document, where)
            except InvalidDocumentError as exc:
                own_id = record.get("_id", record.get("id"))
                readable = None if own_id is None else str(own_id)
                rejected = Rejected(exc, where, line, readable, line_number)
                yield SourceRecord(where, line_number, line, rejected)
                continue
            yield SourceRecord(where, line_number, line, document)

    def checked(
        self, split: Callable[[Document], list[Document]] | None = None
    ) -> Iterator[Document | Rejected]:
        """What ``index`` writes: every record checked on its own and against the ids
        before it (a different record under an id already met is rejected, the first
        one kept), after ``split`` (chunking) where given, so that the chunk ids count too.
        The write path's checks are all here, so what comes out as a Document is written."""
        register = IdRegister()
        for record in self.records():
            if isinstance(record.entry, Rejected):
                yield record.entry
                continue
            pieces = [record.entry] if split is None else split(record.entry)
            try:
                register.admit(pieces, record.where)
            except InvalidDocumentError as exc:
                yield record.rejected(exc)
                continue
            yield from pieces

    def survey(self) -> tuple[int, int]:
        """``(documents, rejected records)`` as :meth:`checked` (unsplit) gives them."""
        documents = rejected = 0
        for entry in self.checked():
            if not isinstance(entry, Rejected):
                documents += 1
            elif not skippable(entry, self.kind):
                rejected += 1
        return documents, rejected

    def scan(self) -> int:
        """Count the documents, checking every record as :meth:`checked` does; the first
        one that cannot be indexed raises (empty text files are skipped, not counted)."""
        return sum(1 for _ in self.strict())

    def strict(
        self, split: Callable[[Document], list[Document]] | None = None
    ) -> Iterator[Document]:
        """:meth:`checked`, raising at the first record that cannot be indexed (its error
        names the file and line); empty text files are passed by."""
        for entry in self.checked(split):
            if isinstance(entry, Rejected):
                if skippable(entry, self.kind):
                    continue
                raise entry.error
            yield entry

    def _text_paths(self) -> Iterator[tuple[Path, str]]:
        if self.path.is_file():
            yield self.path, self.path.name
            return
        for path in _text_files(self.path):
            yield path, path.relative_to(self.path).as_posix()


def skippable(rejected: Rejected, kind: SourceKind) -> bool:
    """An empty text file: nothing to find in it, so even strict reading passes it by."""
    return rejected.empty and kind is SourceKind.TEXT


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
