"""Ingestion guarantees: nothing partly written by a failing call, duplicates refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from langchain_core.documents import Document

from hybrid_retriever import (
    DuplicateIdError,
    HybridRetriever,
    InvalidDocumentError,
    InvalidParameterError,
)

MakeRetriever = Callable[..., HybridRetriever]


def test_bad_document_in_a_batch_writes_nothing(make_retriever: MakeRetriever) -> None:
    retriever = make_retriever(collection_name="partial")
    docs = [Document(page_content="fine"), Document(page_content="   ")]
    with pytest.raises(InvalidDocumentError, match="position 1 has empty page_content"):
        retriever.add_documents(docs, show_progress=False)
    assert retriever.storage.get_layout("partial") is None


def test_same_id_for_different_documents_is_refused(make_retriever: MakeRetriever) -> None:
    retriever = make_retriever()
    with pytest.raises(DuplicateIdError, match="position 1 has id 'x'"):
        retriever.add_texts(["one", "two"], ids=["x", "x"], show_progress=False)


def test_identical_repeats_are_written_once(make_retriever: MakeRetriever) -> None:
    retriever = make_retriever()
    ids = retriever.add_texts(["one", "one", "two"], ids=["x", "x", "y"], show_progress=False)
    assert ids[0] == ids[1]
    assert retriever.count() == 2


def test_document_id_field_is_used(make_retriever: MakeRetriever) -> None:
    retriever = make_retriever()
    by_field = retriever.add_documents([Document(page_content="a", id="k1")], show_progress=False)
    by_arg = retriever.add_texts(["a"], ids=["k1"], show_progress=False)
    assert by_field == by_arg


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ids": ["a"]}, "different lengths"),
        ({"batch_size": 0}, "batch_size must be"),
    ],
)
def test_bad_ingestion_arguments(make_retriever: MakeRetriever, kwargs: dict, message: str) -> None:
    retriever = make_retriever()
    with pytest.raises(InvalidParameterError, match=message):
        retriever.add_texts(["a", "b"], show_progress=False, **kwargs)


def test_single_document_instead_of_list(make_retriever: MakeRetriever) -> None:
    with pytest.raises(InvalidParameterError, match="Wrap it in a list"):
        make_retriever().add_documents(Document(page_content="a"), show_progress=False)  # type: ignore[arg-type]


def test_delete_needs_string_ids(make_retriever: MakeRetriever) -> None:
    with pytest.raises(InvalidParameterError, match="not a single str"):
        make_retriever().delete("abc")


def test_ids_length_checked_up_front_for_lists(make_retriever: MakeRetriever) -> None:
    retriever = make_retriever(collection_name="lengths")
    docs = [Document(page_content="a"), Document(page_content="b")]
    with pytest.raises(InvalidParameterError, match="2 documents but 3 ids"):
        retriever.add_documents(docs, ids=["x", "y", "z"], show_progress=False)
    assert retriever.storage.get_layout("lengths") is None
