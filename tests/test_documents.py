"""Point ids and payloads: determinism and refusal of what cannot be stored."""

from __future__ import annotations

import datetime
import math
import uuid
from typing import Any

import numpy as np
import pytest

from hybrid_retriever.documents import (
    CONTENT_NAMESPACE,
    ID_NAMESPACE,
    document_id,
    documents_from_texts,
    lookup_point_ids,
    point_id,
    prepare_document,
)
from hybrid_retriever.errors import InvalidDocumentError, InvalidParameterError


def test_ids_are_pinned_uuid5() -> None:
    # Literal values: changing the namespaces would silently duplicate every stored corpus.
    assert point_id("doc-1", "text", {}) == "0e0337c8-f293-554b-86e2-5de91a0039ce"
    assert point_id(7, "text", {}) == point_id("7", "other text", {"a": 1})
    assert point_id("doc-1", "x", {}) == str(uuid.uuid5(ID_NAMESPACE, "doc-1"))
    assert point_id(None, "hello", {}) == str(uuid.uuid5(CONTENT_NAMESPACE, "hello\x00{}"))


def test_content_ids_depend_on_text_and_metadata_not_key_order() -> None:
    a = point_id(None, "same text", {"x": 1, "y": 2})
    assert a == point_id(None, "same text", {"y": 2, "x": 1})
    assert a != point_id(None, "same text", {"x": 1})
    assert a != point_id(None, "other text", {"x": 1, "y": 2})
    assert uuid.UUID(a).version == 5


def test_payload_is_langchain_qdrant_layout() -> None:
    prepared = prepare_document("hello", {"source": "a"}, None, position=0)
    assert prepared.payload == {"page_content": "hello", "metadata": {"source": "a"}}
    assert prepared.document_id == prepared.point_id  # no id of its own: known by the point's


@pytest.mark.parametrize(
    ("own_id", "stored"),
    [("food-01", "food-01"), (7, 7), (2**70, str(2**70))],  # Qdrant's integers are 64-bit
)
def test_the_callers_id_is_stored_beside_the_content(own_id: str | int, stored: Any) -> None:
    prepared = prepare_document("hello", {}, own_id, position=0)
    assert prepared.payload["document_id"] == stored
    assert prepared.document_id == str(own_id)
    assert document_id(prepared.point_id, prepared.payload) == str(own_id)
    assert prepared.replaces is None


def test_a_point_without_a_stored_id_is_known_by_its_point_id() -> None:
    """Older collections, and langchain-qdrant's, have no ``document_id`` in the payload."""
    assert document_id("p-1", {"page_content": "x", "metadata": {}}) == "p-1"


def test_a_uuid_id_is_its_own_point_id_and_replaces_its_older_hashed_copy() -> None:
    own = "7D9F1C2A-3B4E-4F5A-8B6C-1D2E3F4A5B6C"
    prepared = prepare_document("hello", {}, own, position=0)
    assert prepared.point_id == own.lower()  # canonical, as engines return it
    assert prepared.document_id == own
    assert prepared.replaces == str(uuid.uuid5(ID_NAMESPACE, own))


def test_lookup_maps_the_callers_ids_and_point_ids() -> None:
    content_point = point_id(None, "hello", {})
    hashed, as_int, as_point = lookup_point_ids(["food-01", 7, content_point])
    assert hashed == [point_id("food-01", "", {})]
    assert as_int == [point_id(7, "", {})]
    assert as_point == [content_point, str(uuid.uuid5(ID_NAMESPACE, content_point))]


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ("food-01", "not a single str"),
        ([None], "not a document id"),
        ([""], "not a document id"),
        ([True], "not a document id"),
    ],
)
def test_lookup_refuses_what_is_not_a_list_of_ids(ids: Any, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        lookup_point_ids(ids)


@pytest.mark.parametrize(
    ("text", "metadata", "doc_id", "message"),
    [
        ("", {}, None, "empty page_content"),
        ("  \n", {}, None, "empty page_content"),
        (None, {}, None, "must be a str"),
        ("t", {"when": datetime.datetime(2024, 1, 1)}, None, r"\['when'\] is a datetime"),
        ("t", {"tags": {"a", "b"}}, None, r"\['tags'\] is a set"),
        ("t", {"n": np.float32(1.5)}, None, r"\['n'\] is a float32"),
        ("t", {"x": math.nan}, None, "JSON cannot store"),
        ("t", {"nested": {"deep": [1, object()]}}, None, r"\['nested'\]\['deep'\]\[1\]"),
        ("t", {1: "int key"}, None, "keys must be strings"),
        ("t", {"_score": 1}, None, "reserved metadata keys"),
        ("t", [("a", 1)], None, "must be a dict"),
        ("t", {}, 1.5, "ids must be non-empty strings or integers"),
        ("t", {}, "", "ids must be non-empty strings or integers"),
    ],
)
def test_refused_documents(text: Any, metadata: Any, doc_id: Any, message: str) -> None:
    with pytest.raises(InvalidDocumentError, match=message):
        prepare_document(text, metadata, doc_id, position=3)


def test_documents_from_texts_checks_lengths_and_types() -> None:
    docs = list(documents_from_texts(["a", "b"], [{"i": 1}, None]))
    assert [d.metadata for d in docs] == [{"i": 1}, {}]
    with pytest.raises(InvalidDocumentError, match="different lengths"):
        list(documents_from_texts(["a", "b"], [{}]))
    with pytest.raises(InvalidDocumentError, match="position 1 is of type int"):
        list(documents_from_texts(["a", 5]))
    with pytest.raises(InvalidDocumentError, match="not a single str"):
        list(documents_from_texts("abc"))
