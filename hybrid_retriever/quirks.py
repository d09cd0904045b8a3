"""What a dataset as it ships holds that evaluation must handle, and says it handled.

Public BEIR-format datasets are not clean: empty documents, judgements naming
documents that are not in the corpus (a known upstream defect of some), repeated ids,
identical texts under different ids, CRLF line endings, byte-order marks, grades of 0
or below. None of them is a reason to stop an evaluation; each is handled the way
BEIR's own evaluation does, so that scores stay comparable with published ones, and
stated in the report, so that nobody has to guess. A :class:`Quirk` is one such
finding: what was met, how often, and what eval did about it.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

SHOWN = 5
"""Example ids quoted per quirk in messages."""


class QuirkKind(str, Enum):
    """The kinds of finding eval reports (the ``kind`` of each JSON entry)."""

    EMPTY_DOCUMENTS = "empty_documents"
    UNREADABLE_RECORDS = "unreadable_records"
    REPEATED_DOCUMENT_IDS = "repeated_document_ids"
    DUPLICATE_TEXTS = "duplicate_texts"
    TITLE_ONLY_DOCUMENTS = "title_only_documents"
    NO_TITLES = "no_titles"
    JUDGED_DOCUMENTS_NOT_IN_CORPUS = "judged_documents_not_in_corpus"
    JUDGED_QUERIES_NOT_IN_QUERIES = "judged_queries_not_in_queries"
    UNJUDGED_QUERIES = "unjudged_queries"
    EMPTY_QUERIES = "empty_queries"
    UPPERCASE_QUERIES = "uppercase_queries"
    NON_POSITIVE_GRADES = "non_positive_grades"
    REPEATED_JUDGEMENTS = "repeated_judgements"
    CRLF = "crlf_line_endings"
    BYTE_ORDER_MARK = "byte_order_mark"
    GZIPPED = "gzipped_files"


@dataclass(frozen=True)
class Quirk:
    """One finding: its kind, how many items it concerns, and a sentence saying what
    was met and what was done (e.g. "2 empty documents ...: not indexed")."""

    kind: QuirkKind
    count: int
    message: str
    examples: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "count": self.count,
            "message": self.message,
            "examples": list(self.examples),
        }


def listed(ids: Sequence[str], shown: int = SHOWN) -> str:
    """``'a', 'b', ... (3 more)``: a few ids for a message."""
    text = ", ".join(repr(i) for i in ids[:shown])
    if len(ids) > shown:
        text += f", ... ({len(ids) - shown} more)"
    return text


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 document``, ``2 documents``."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def quirk(kind: QuirkKind, ids: Sequence[str], message: str) -> Quirk:
    """A quirk about ``ids``, with its first few as examples."""
    return Quirk(kind, len(ids), message, tuple(ids[:SHOWN]))


def file_traits(path: Path, *, sample: int = 1 << 16) -> tuple[bool, bool]:
    """``(starts with a UTF-8 byte-order mark, ends lines with CRLF)``, from the file's
    first bytes (a gzipped file is read through gzip)."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            head: bytes = handle.read(sample)
    except (OSError, EOFError):
        return False, False
    first_line = head.split(b"\n", 1)[0]
    return head.startswith(b"\xef\xbb\xbf"), b"\n" in head and first_line.endswith(b"\r")


def file_quirks(paths: Iterable[Path], folder: Path) -> list[Quirk]:
    """CRLF, byte-order marks and gzip among the dataset's files (read as plain text)."""
    named = [
        (p, p.relative_to(folder).as_posix() if p.is_relative_to(folder) else str(p)) for p in paths
    ]
    boms, crlfs = [], []
    for path, name in named:
        bom, crlf = file_traits(path)
        if bom:
            boms.append(name)
        if crlf:
            crlfs.append(name)
    gzipped = [name for path, name in named if path.suffix == ".gz"]
    found = []
    if crlfs:
        found.append(
            quirk(
                QuirkKind.CRLF, crlfs, f"CRLF line endings in {listed(crlfs)}: read as plain lines."
            )
        )
    if boms:
        found.append(
            quirk(
                QuirkKind.BYTE_ORDER_MARK,
                boms,
                f"a UTF-8 byte-order mark starts {listed(boms)}: ignored.",
            )
        )
    if gzipped:
        found.append(
            quirk(QuirkKind.GZIPPED, gzipped, f"gzipped: {listed(gzipped)}; read through gzip.")
        )
    return found
