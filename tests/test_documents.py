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
    documents_from_texts,
    point_id,
    prepare_document,
)
from hybrid_retriever.errors import InvalidDocumentError


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
