"""From a LangChain ``Document`` to what is stored: a deterministic id and a payload.

Point ids are deterministic, so indexing the same documents twice writes the same
points instead of duplicates:

* a document whose own id (``Document.id`` or ``ids=``) is a UUID string is stored under
  that UUID, as langchain-qdrant does, so a document read back (whose id may be a point
  id) and added again replaces itself;
* any other id of its own gets ``uuid5(ID_NAMESPACE, str(id))``, so ``"doc-1"`` and ``1``
  are both fine (before ids were stored, UUID ids were hashed the same way: re-adding one
  removes that older copy, see :attr:`PreparedDocument.replaces`);
* a document without one gets ``uuid5(CONTENT_NAMESPACE, text + canonical metadata)``,
  so two documents with the same text but different metadata stay two points.

The payload is ``{"page_content": text, "metadata": {...}}``, the layout
langchain-qdrant uses, so either library can read the other's collections, plus
``"document_id"``: the caller's id as given (str or int), so that results, ``get_by_ids``
and ``delete`` speak the caller's ids (:func:`document_id`, :func:`lookup_point_ids`).
A point without it (a document without an id of its own, a collection written before
ids were stored, or by langchain-qdrant) is known by its point id.
"""

from __future__ import annotations

import itertools
import json
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.documents import Document

from hybrid_retriever.collection import CONTENT_KEY, DOCUMENT_ID_KEY, METADATA_KEY
from hybrid_retriever.errors import InvalidDocumentError, InvalidParameterError

ID_NAMESPACE = uuid.UUID("6f1c3a52-8d0e-5b7a-9c4e-2a1f0b3d7e91")
CONTENT_NAMESPACE = uuid.UUID("b2e7d9c4-1f6a-5e3b-8a0d-4c9f2e1b7a63")

RESERVED_METADATA_KEYS = frozenset({"_id", "_score", "_ranks", "_scores", "_relevance"})
"""Keys the retriever adds to returned documents; stored metadata may not use them."""

_INT64_MAX = 2**63 - 1

MAX_METADATA_DEPTH = 64
"""Containers (dicts and lists) metadata may nest, the top-level dict included. Deeper
is refused with a clear error instead of a RecursionError somewhere in an engine or in
JSON encoding, and no filter can name a path that long anyway."""


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A validated document, ready to encode and store."""

    point_id: str
    text: str
    payload: dict[str, Any]
    document_id: str
    """What results will return as ``Document.id``: the caller's id, else the point id."""
    position: int
    """Where it came in the caller's input, for errors found after validation."""
    replaces: str | None = None
    """Where a UUID id was stored before ids were kept (its uuid5 hash): that copy is
    removed once this one is written, so upgrading never leaves a duplicate."""


def point_id(doc_id: str | int | None, text: str, metadata: Mapping[str, Any]) -> str:
    """The deterministic point id of a document (see the module docstring)."""
    if doc_id is not None:
        return _as_uuid(doc_id) or _hashed_id(doc_id)
    canonical = json.dumps(metadata, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return str(uuid.uuid5(CONTENT_NAMESPACE, f"{text}\x00{canonical}"))


def prepare_document(text: Any, metadata: Any, doc_id: Any, *, position: int) -> PreparedDocument:
    """Validate one document; errors name its position in the input and the fix."""
    where = f"Document at position {position}"
    if not isinstance(text, str):
        raise InvalidDocumentError(
            f"{where} has page_content of type {type(text).__name__}; it must be a str."
        )
    if not text.strip():
        raise InvalidDocumentError(
            f"{where} has empty page_content; drop it or give it text, since an empty "
            "document can never be retrieved meaningfully."
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidDocumentError(
            f"{where} has an invalid character at position {exc.start} of its text (a lone "
            "surrogate); it is not valid Unicode. Decode the source with errors='replace'."
        ) from None
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        raise InvalidDocumentError(
            f"{where} has metadata of type {type(metadata).__name__}; it must be a dict."
        )
    reserved = sorted(RESERVED_METADATA_KEYS.intersection(metadata))
    if reserved:
        raise InvalidDocumentError(
            f"{where} uses the reserved metadata keys {reserved}; the retriever adds these to "
            "results. Rename them (or drop them if the document came from a previous search)."
        )
    _check_json(metadata, f"{where}: metadata")
    if doc_id is not None and (
        isinstance(doc_id, bool) or not isinstance(doc_id, str | int) or doc_id == ""
    ):
        raise InvalidDocumentError(
            f"{where} has id {doc_id!r} of type {type(doc_id).__name__}; ids must be non-empty "
            "strings or integers (or None to derive the id from the content)."
        )
    if isinstance(doc_id, str):
        _check_unicode(doc_id, f"{where}: its id")
    metadata = dict(metadata)
    pid = point_id(doc_id, text, metadata)
    payload: dict[str, Any] = {CONTENT_KEY: text, METADATA_KEY: metadata}
    if doc_id is not None:
        # Qdrant stores 64-bit integers; a bigger one is kept as its decimal string.
        fits = isinstance(doc_id, str) or -_INT64_MAX - 1 <= doc_id <= _INT64_MAX
        payload[DOCUMENT_ID_KEY] = doc_id if fits else str(doc_id)
    return PreparedDocument(
        point_id=pid,
        text=text,
        payload=payload,
        document_id=pid if doc_id is None else str(doc_id),
        position=position,
        replaces=_hashed_id(doc_id) if doc_id is not None and _as_uuid(doc_id) else None,
    )


def document_id(point: str, payload: Mapping[str, Any]) -> str:
    """The id a stored point is returned with: the caller's (``payload["document_id"]``),
    else the point id (documents without an id, older collections, langchain-qdrant's)."""
    stored = payload.get(DOCUMENT_ID_KEY)
    if isinstance(stored, str | int) and not isinstance(stored, bool) and stored != "":
        return str(stored)
    return point


def lookup_point_ids(ids: Iterable[Any]) -> list[list[str]]:
    """For each id given to ``get_by_ids`` / ``delete``, the point ids it may name: the one
    ``add_documents`` derives from it (a UUID is its own point id, so the ids that results
    carry work too) and, for a UUID, where it was stored before ids were kept."""
    if isinstance(ids, str | int):
        raise InvalidParameterError(
            f"ids must be a list of ids, not a single {type(ids).__name__}: "
            f"wrap it, e.g. [{ids!r}]."
        )
    candidates = []
    for given in ids:
        if isinstance(given, bool) or not isinstance(given, str | int) or given == "":
            raise InvalidParameterError(
                f"{given!r} is not a document id; pass the ids the documents were added with "
                "(non-empty strings or integers) or the ids that results carry."
            )
        as_point = _as_uuid(given)
        hashed = _hashed_id(given)
        candidates.append([hashed] if as_point is None else [as_point, hashed])
    return candidates


def _hashed_id(doc_id: str | int) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, str(doc_id)))


def _as_uuid(value: str | int) -> str | None:
    """``value`` as a canonical UUID string (how engines return point ids), or None."""
    if not isinstance(value, str) or len(value) < 32:  # a UUID has 32 hex digits at least
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _check_json(value: Any, path: str, depth: int = 0) -> None:
    """Refuse what the engines cannot store exactly, naming the exact key, so nothing is
    silently altered: what JSON cannot hold, integers beyond 64 bits (Qdrant Edge turns
    them into floats, qdrant-client keeps them: refused on both, so both agree) and
    nesting deeper than :data:`MAX_METADATA_DEPTH`."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        _check_unicode(value, path)
        return
    if isinstance(value, int):
        if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
            raise InvalidDocumentError(
                f"{path} is the integer {value}, outside the signed 64-bit range that Qdrant "
                f"stores exactly (-2**63 to 2**63 - 1); it would come back altered. Store it "
                f"as a string (str(value)) and convert it back after reading."
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidDocumentError(
                f"{path} is {value}, which JSON cannot store. Use None or a finite number."
            )
        return
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_METADATA_DEPTH:
        raise InvalidDocumentError(
            f"{path} is nested more than {MAX_METADATA_DEPTH} levels deep; flatten the "
            "metadata (for example join the keys of a path into one key) or store the deep "
            "part as a JSON string."
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidDocumentError(
                    f"{path} has a key {key!r} of type {type(key).__name__}; "
                    "metadata keys must be strings."
                )
            _check_unicode(key, f"a key of {path}")
            _check_json(item, f"{path}[{key!r}]", depth + 1)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", depth + 1)
        return
    raise InvalidDocumentError(
        f"{path} is a {type(value).__name__}, which cannot be stored as JSON. Convert it first "
        "(for example a datetime with .isoformat(), a set with sorted(...), a numpy value with "
        ".item() or .tolist())."
    )


def _check_unicode(text: str, path: str) -> None:
    """A lone surrogate (``"\\ud800"``, from a bad decode or a JSON escape) cannot be
    written as UTF-8: every engine would fail on it with a bare ``UnicodeEncodeError``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidDocumentError(
            f"{path} has an invalid character at position {exc.start} (a lone surrogate); it "
            "is not valid Unicode. Decode the source with errors='replace'."
        ) from None


def documents_from_texts(
    texts: Iterable[Any], metadatas: Iterable[Any] | None = None
) -> Iterator[Document]:
    """Lazily pair texts with metadata as Documents, refusing what Document cannot hold."""
    if isinstance(texts, str):
        raise InvalidDocumentError("texts must be an iterable of strings, not a single str.")
    sentinel = object()
    pairs = itertools.zip_longest(
        texts,
        metadatas if metadatas is not None else (),
        fillvalue=sentinel if metadatas is not None else None,
    )
    for position, (text, metadata) in enumerate(pairs):
        if text is sentinel or metadata is sentinel:
            raise InvalidDocumentError(
                "texts and metadatas have different lengths; pass one metadata dict per text."
            )
        if not isinstance(text, str):
            raise InvalidDocumentError(
                f"Text at position {position} is of type {type(text).__name__}; it must be a str."
            )
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidDocumentError(
                f"Metadata at position {position} is of type {type(metadata).__name__}; "
                "it must be a dict or None."
            )
        yield Document(page_content=text, metadata=dict(metadata or {}))
