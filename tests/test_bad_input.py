"""The bad-input suite: every case gets the package's own exception and a message naming
the problem, or, where it is legitimately not an error, the documented behaviour.

Write cases also check that a failing call wrote nothing.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from qdrant_client import QdrantClient, models

from hybrid_retriever import (
    CollectionMismatchError,
    DuplicateIdError,
    HybridRetriever,
    HybridRetrieverError,
    InvalidDocumentError,
    InvalidParameterError,
    InvalidQueryError,
    ModelLoadError,
    SentenceTransformerEncoder,
    SpladeEncoder,
    StorageError,
)

MakeRetriever = Callable[..., HybridRetriever]


def topic(value: Any) -> models.Filter:
    return models.Filter(
        must=[models.FieldCondition(key="metadata.topic", match=models.MatchValue(value=value))]
    )


# -- searches: (call, expected error, message) -------------------------------------------

SEARCH_ERRORS = [
    pytest.param(lambda r: r.invoke(""), InvalidQueryError, "empty", id="query-empty"),
    pytest.param(lambda r: r.invoke(" \t\n"), InvalidQueryError, "whitespace", id="query-blank"),
    pytest.param(lambda r: r.invoke(None), InvalidQueryError, "must be a str", id="query-none"),
    pytest.param(lambda r: r.invoke(b"bread"), InvalidQueryError, "decode", id="query-bytes"),
    pytest.param(
        lambda r: r.invoke("x" * 1_000_000), InvalidQueryError, "1,000,000 characters", id="1MB"
    ),
    pytest.param(
        lambda r: r.invoke("bread \ud800"), InvalidQueryError, "lone surrogate", id="surrogate"
    ),
    pytest.param(lambda r: r.invoke("bread", k=0), InvalidParameterError, ">= 1", id="k-zero"),
    pytest.param(lambda r: r.invoke("bread", k=-3), InvalidParameterError, ">= 1", id="k-neg"),
    pytest.param(
        lambda r: r.invoke("bread", k=10**9), InvalidParameterError, "too large", id="k-huge"
    ),
    pytest.param(
        lambda r: r.invoke("bread", k=2.5), InvalidParameterError, "integer", id="k-float"
    ),
    pytest.param(
        lambda r: r.invoke("bread", k=5, prefetch_k=3),
        InvalidParameterError,
        "prefetch_k=3 is below k=5",
        id="prefetch-below-k",
    ),
    pytest.param(
        lambda r: r.invoke("bread", weights={"dense": -1.0}),
        InvalidParameterError,
        "finite and >= 0",
        id="weight-negative",
    ),
    pytest.param(
        lambda r: r.invoke("bread", weights={"dense": 1.0, "sparse": 1.0, "colbert": 1.0}),
        InvalidParameterError,
        "unknown branches",
        id="weights-wrong-length",
    ),
    pytest.param(
        lambda r: r.invoke("bread", weights=[1.0, 1.0]),
        InvalidParameterError,
        "mapping",
        id="weights-list",
    ),
    pytest.param(
        lambda r: r.invoke(
            "bread",
            filter=models.Filter(
                must=[models.FieldCondition(key="topic", match=models.MatchValue(value="x"))]
            ),
        ),
        InvalidParameterError,
        "'metadata.topic'",
        id="filter-unknown-field",
    ),
    pytest.param(
        lambda r: r.invoke("bread", filter={"metadata.topic": "cooking"}),
        InvalidParameterError,
        "must be a qdrant_client.models.Filter",
        id="filter-wrong-type",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), SEARCH_ERRORS)
def test_search_errors(
    demo_retriever: HybridRetriever, call: Callable, error: type, message: str
) -> None:
    with pytest.raises(error, match=message) as raised:
        call(demo_retriever)
    assert isinstance(raised.value, HybridRetrieverError)


# -- searches that are not errors: the documented behaviour -------------------------------

SEARCH_BEHAVIOUR = [
    pytest.param("🍞🥖 bread and yeast", "cooking", id="emoji"),
    pytest.param("bread\x00 dough\x07 rise\x1b", "cooking", id="control-characters"),
    pytest.param("خبز bread dough rises", "cooking", id="right-to-left"),
    pytest.param("planets סביב stars", "astronomy", id="mixed-direction"),
]


@pytest.mark.parametrize(("query", "expected_topic"), SEARCH_BEHAVIOUR)
def test_unusual_but_valid_queries(
    demo_retriever: HybridRetriever, query: str, expected_topic: str
) -> None:
    """Any valid Unicode is searched as is; the tokenizers drop what they cannot use."""
    assert demo_retriever.invoke(query, k=1)[0].metadata["topic"] == expected_topic


def test_filter_value_of_another_type_matches_nothing(demo_retriever: HybridRetriever) -> None:
    """Documented: Qdrant compares typed values; an int never equals the string "cooking"."""
    assert demo_retriever.invoke("bread", filter=topic(3)) == []


def test_filter_on_an_absent_metadata_field_matches_nothing(
    demo_retriever: HybridRetriever,
) -> None:
    absent = models.Filter(
        must=[models.FieldCondition(key="metadata.colour", match=models.MatchValue(value="red"))]
    )
    assert demo_retriever.invoke("bread", filter=absent) == []


# -- documents ---------------------------------------------------------------------------

DOCUMENT_ERRORS = [
    pytest.param([Document(page_content="  ")], {}, InvalidDocumentError, "empty", id="empty"),
    pytest.param(None, {"texts": ["ok", None]}, InvalidDocumentError, "NoneType", id="none-text"),
    pytest.param(
        [Document(page_content="bad \udcff text")], {}, InvalidDocumentError, "surrogate", id="surr"
    ),
    pytest.param(
        [Document(page_content="t", metadata={"at": datetime.datetime(2024, 5, 1)})],
        {},
        InvalidDocumentError,
        r"\['at'\] is a datetime.*isoformat",
        id="datetime",
    ),
    pytest.param(
        [Document(page_content="t", metadata={"tags": {"a"}})],
        {},
        InvalidDocumentError,
        r"\['tags'\] is a set",
        id="set",
    ),
    pytest.param(
        [Document(page_content="t", metadata={"n": np.int64(3)})],
        {},
        InvalidDocumentError,
        r"\['n'\] is a int64.*\.item\(\)",
        id="numpy",
    ),
    pytest.param(
        [Document(page_content="one", id="a"), Document(page_content="two", id="a")],
        {},
        DuplicateIdError,
        "already used by a different document",
        id="duplicate-ids",
    ),
    pytest.param(
        [Document(page_content="t")],
        {"ids": [3.5]},
        InvalidDocumentError,
        "ids must be non-empty strings or integers",
        id="float-id",
    ),
]


@pytest.mark.parametrize(("docs", "texts", "error", "message"), DOCUMENT_ERRORS)
def test_document_errors_write_nothing(
    make_retriever: MakeRetriever,
    engine: str,
    docs: list[Document] | None,
    texts: dict[str, Any],
    error: type,
    message: str,
) -> None:
    retriever = make_retriever(collection_name="bad", engine=engine)
    retriever.add_texts(["already here"], show_progress=False)
    with pytest.raises(error, match=message):
        if docs is None:
            retriever.add_texts(texts["texts"], show_progress=False)
        else:
            retriever.add_documents(docs, show_progress=False, **texts)
    assert retriever.count() == 1


def test_non_uuid_string_ids_are_kept_and_stable(make_retriever: MakeRetriever) -> None:
    """Documented: any str or int id is fine ('doc-1' is hashed to its point id), comes back
    as given, and adding it again overwrites."""
    retriever = make_retriever()
    first = retriever.add_texts(["t"], ids=["doc-1"], show_progress=False)
    assert first == retriever.add_texts(["t"], ids=["doc-1"], show_progress=False)
    assert first == ["doc-1"] and retriever.count() == 1


# -- collections made by other tools -------------------------------------------------------

FOREIGN_COLLECTIONS = [
    pytest.param(
        {"text": models.VectorParams(size=384, distance=models.Distance.COSINE)},
        True,
        "no dense vector named 'dense'",
        id="other-names",
    ),
    pytest.param(
        {"dense": models.VectorParams(size=768, distance=models.Distance.COSINE)},
        True,
        "768 dimensions",
        id="other-dimension",
    ),
    pytest.param(
        {"dense": models.VectorParams(size=384, distance=models.Distance.EUCLID)},
        True,
        "Euclid distance",
        id="other-distance",
    ),
    pytest.param(
        {"dense": models.VectorParams(size=384, distance=models.Distance.COSINE)},
        False,
        "no sparse vector named 'sparse'",
        id="no-sparse",
    ),
]


@pytest.mark.parametrize(("vectors", "with_sparse", "message"), FOREIGN_COLLECTIONS)
def test_collections_made_by_other_tools(
    make_retriever: MakeRetriever, vectors: dict, with_sparse: bool, message: str
) -> None:
    client = QdrantClient(":memory:")
    client.create_collection(
        "foreign",
        vectors_config=vectors,
        sparse_vectors_config={"sparse": models.SparseVectorParams()} if with_sparse else None,
    )
    retriever = make_retriever(collection_name="foreign", client=client)
    with pytest.raises(CollectionMismatchError, match=message):
        retriever.invoke("bread")
    with pytest.raises(CollectionMismatchError, match=message):
        retriever.add_texts(["t"], show_progress=False)
    assert client.count("foreign").count == 0


# -- models and locations ------------------------------------------------------------------


def test_model_path_that_does_not_exist() -> None:
    with pytest.raises(ModelLoadError, match="'/no/such/dir'"):
        SentenceTransformerEncoder("/no/such/dir").dimension  # noqa: B018


def test_sparse_model_that_is_not_a_masked_lm() -> None:
    with pytest.raises(ModelLoadError, match="not a masked-language model"):
        SpladeEncoder("all-MiniLM-L6-v2").encode_query("x")


def test_unreachable_location(make_retriever: MakeRetriever) -> None:
    with pytest.raises(StorageError, match="Could not reach Qdrant"):
        make_retriever(url="http://127.0.0.1:9", timeout=3).invoke("bread")
