"""Writing precomputed vectors (``add_embedded_documents``): the same collection as
``add_documents`` from the same models' vectors, and every bad vector refused whole."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.documents import Document

from hybrid_retriever import (
    Bm25Encoder,
    CollectionMismatchError,
    DuplicateIdError,
    EmbeddedDocument,
    HybridRetriever,
    InvalidDocumentError,
    InvalidParameterError,
    ModelRecordWarning,
    SentenceTransformerEncoder,
    SparseVector,
    SpladeEncoder,
)
from hybrid_retriever.model_catalog import DEFAULT_DENSE_MODEL, DEFAULT_SPARSE_MODEL

ENGINES = ("edge", "qdrant-client")
QUERIES = ("why does bread rise", "vector database", "learned sparse retrieval", "moon landing")
MODELS = {"dense_model": DEFAULT_DENSE_MODEL, "sparse_model": DEFAULT_SPARSE_MODEL}


def embedded(
    documents: list[Document],
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
) -> list[EmbeddedDocument]:
    """What a batch job elsewhere would hand over: each document with its vectors."""
    texts = [d.page_content for d in documents]
    dense = dense_encoder.encode_documents(texts)
    sparse = sparse_encoder.encode_documents(texts)
    return [
        EmbeddedDocument(
            page_content=d.page_content, dense=v, sparse=s, metadata=d.metadata, id=d.id
        )
        for d, v, s in zip(documents, dense, sparse, strict=True)
    ]


@pytest.fixture(scope="module")
def demo_embedded(
    documents: list[Document],
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
) -> list[EmbeddedDocument]:
    return embedded(documents, dense_encoder, sparse_encoder)


def ranking(retriever: HybridRetriever, query: str) -> list[tuple[str | None, float, str]]:
    return [(d.id, d.metadata["_score"], d.page_content) for d in retriever.invoke(query, k=5)]


@pytest.mark.parametrize("engine", ENGINES)
def test_precomputed_vectors_search_like_add_documents(
    engine: str,
    make_retriever: Callable[..., HybridRetriever],
    documents: list[Document],
    demo_embedded: list[EmbeddedDocument],
) -> None:
    encoded = make_retriever(collection_name="encoded", engine=engine, bm25_encoder=True)
    encoded.add_documents(documents, show_progress=False)
    written = make_retriever(collection_name="written", engine=engine, bm25_encoder=True)
    ids = written.add_embedded_documents(demo_embedded, **MODELS, show_progress=False)

    assert ids == [d.id for d in documents]
    assert written.count() == encoded.count() == len(documents)
    for query in QUERIES:
        got, want = ranking(written, query), ranking(encoded, query)
        assert [(i, t) for i, _, t in got] == [(i, t) for i, _, t in want]
        assert [s for _, s, _ in got] == pytest.approx([s for _, s, _ in want], abs=1e-6)
    assert written.get_by_ids(ids[:3]) == encoded.get_by_ids(ids[:3])
    # The new collection's record is the one add_documents writes: same models, same probes.
    record = written.storage.read_collection_record("written")
    assert record == encoded.storage.read_collection_record("encoded")


def test_rewriting_overwrites_and_mixes_with_add_documents(
    make_retriever: Callable[..., HybridRetriever],
    documents: list[Document],
    demo_embedded: list[EmbeddedDocument],
) -> None:
    retriever = make_retriever(collection_name="again")
    retriever.add_documents(documents[:5], show_progress=False)
    retriever.add_embedded_documents(demo_embedded, **MODELS, show_progress=False)
    retriever.add_embedded_documents(demo_embedded, **MODELS, batch_size=3, show_progress=False)
    assert retriever.count() == len(documents)
    # A document repeated verbatim in one call is written once.
    twice = [demo_embedded[0], demo_embedded[0]]
    assert (
        retriever.add_embedded_documents(twice, **MODELS, show_progress=False)
        == [demo_embedded[0].id] * 2
    )
    assert retriever.count() == len(documents)


def with_(document: EmbeddedDocument, **changes: Any) -> EmbeddedDocument:
    fields = {
        "page_content": document.page_content,
        "dense": document.dense,
        "sparse": document.sparse,
        "metadata": document.metadata,
        "id": document.id,
        "bm25": document.bm25,
    }
    return EmbeddedDocument(**{**fields, **changes})


def _dense(document: EmbeddedDocument) -> list[float]:
    return list(document.dense)


BAD_VECTORS: dict[str, tuple[Callable[[EmbeddedDocument], dict[str, Any]], type, str]] = {
    "dense too short": (
        lambda d: {"dense": _dense(d)[:-1]},
        CollectionMismatchError,
        "has 383 values, but the collection's dense vectors have 384",
    ),
    "dense NaN": (
        lambda d: {"dense": [*_dense(d)[:-1], math.nan]},
        InvalidDocumentError,
        "holds nan at position 383",
    ),
    "dense infinite": (
        lambda d: {"dense": [math.inf, *_dense(d)[1:]]},
        InvalidDocumentError,
        "holds inf at position 0",
    ),
    "dense beyond float32": (
        lambda d: {"dense": [1e39, *_dense(d)[1:]]},
        InvalidDocumentError,
        "float32",
    ),
    "dense zeros": (
        lambda d: {"dense": [0.0] * 384},
        InvalidDocumentError,
        "all zeros",
    ),
    "dense not numbers": (
        lambda d: {"dense": ["a"] * 384},
        InvalidDocumentError,
        "not a list of numbers",
    ),
    "sparse index beyond the vocabulary": (
        lambda d: {"sparse": SparseVector([5, 30522], [1.0, 1.0])},
        InvalidDocumentError,
        "index 30522, outside the sparse model's vocabulary of 30522 terms",
    ),
    "sparse negative index": (
        lambda d: {"sparse": {"indices": [-1, 5], "values": [1.0, 1.0]}},
        InvalidDocumentError,
        "index -1",
    ),
    "sparse float indices": (
        lambda d: {"sparse": {"indices": [1.5, 5], "values": [1.0, 1.0]}},
        InvalidDocumentError,
        "indices are not integers",
    ),
    "sparse repeated index": (
        lambda d: {"sparse": SparseVector([7, 3, 7], [1.0, 1.0, 1.0])},
        InvalidDocumentError,
        "names an index twice",
    ),
    "sparse lengths differ": (
        lambda d: {"sparse": {"indices": [1, 2, 3], "values": [1.0]}},
        InvalidDocumentError,
        "3 indices but 1 values",
    ),
    "sparse NaN": (
        lambda d: {"sparse": SparseVector([1, 2], [0.5, math.nan])},
        InvalidDocumentError,
        "holds nan",
    ),
    "sparse not a vector": (
        lambda d: {"sparse": [1, 2, 3]},
        InvalidDocumentError,
        "give a SparseVector",
    ),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", sorted(BAD_VECTORS))
def test_bad_vectors_are_refused_before_anything_is_written(
    case: str,
    engine: str,
    make_retriever: Callable[..., HybridRetriever],
    demo_embedded: list[EmbeddedDocument],
) -> None:
    change, error, words = BAD_VECTORS[case]
    batch = list(demo_embedded[:6])
    batch[4] = with_(batch[4], **change(batch[4]))
    retriever = make_retriever(collection_name="bad", engine=engine)
    with pytest.raises(error, match="position 4") as raised:
        retriever.add_embedded_documents(batch, **MODELS, show_progress=False)
    assert words in str(raised.value)
    assert retriever.storage.get_layout("bad") is None  # not even created
    # Into an existing collection: the batch is refused whole, what was there stays.
    retriever.add_embedded_documents(demo_embedded[6:8], **MODELS, show_progress=False)
    with pytest.raises(error):
        retriever.add_embedded_documents(batch, **MODELS, show_progress=False)
    assert retriever.count() == 2


def test_an_empty_sparse_vector_is_accepted(
    make_retriever: Callable[..., HybridRetriever], demo_embedded: list[EmbeddedDocument]
) -> None:
    retriever = make_retriever(collection_name="no_terms")
    lone = with_(demo_embedded[0], sparse=SparseVector([], []))
    retriever.add_embedded_documents([lone], **MODELS, show_progress=False)
    assert retriever.count() == 1


def test_two_different_documents_under_one_id_are_refused(
    make_retriever: Callable[..., HybridRetriever], demo_embedded: list[EmbeddedDocument]
) -> None:
    retriever = make_retriever(collection_name="clash")
    clash = [demo_embedded[0], with_(demo_embedded[1], id=demo_embedded[0].id)]
    with pytest.raises(DuplicateIdError, match="position 1"):
        retriever.add_embedded_documents(clash, **MODELS, show_progress=False)
    assert retriever.storage.get_layout("clash") is None


def test_a_tenant_bound_retriever_refuses_precomputed_vectors(
    make_retriever: Callable[..., HybridRetriever], demo_embedded: list[EmbeddedDocument]
) -> None:
    """Tenant-bound writes derive their point ids from the tenant: until precomputed
    writes do so too, they are refused rather than written outside the tenant."""
    retriever = make_retriever(collection_name="tenant_vectors", tenant="acme")
    with pytest.raises(InvalidParameterError, match="tenant-bound"):
        retriever.add_embedded_documents(demo_embedded[:2], **MODELS, show_progress=False)
    assert retriever.storage.get_layout("tenant_vectors") is None


def test_vectors_of_other_models_are_refused(
    make_retriever: Callable[..., HybridRetriever], demo_embedded: list[EmbeddedDocument]
) -> None:
    retriever = make_retriever(collection_name="models")
    with pytest.raises(CollectionMismatchError, match=re.escape("'bge-small-en-v1.5'")):
        retriever.add_embedded_documents(
            demo_embedded, dense_model="bge-small-en-v1.5", sparse_model=DEFAULT_SPARSE_MODEL
        )
    assert retriever.storage.get_layout("models") is None
    with pytest.raises(CollectionMismatchError, match="'splade-v3'"):
        retriever.add_embedded_documents(
            demo_embedded, dense_model=DEFAULT_DENSE_MODEL, sparse_model="splade-v3"
        )
    assert retriever.storage.get_layout("models") is None


def test_the_collection_record_is_compared_with_the_declared_models(
    make_retriever: Callable[..., HybridRetriever], demo_embedded: list[EmbeddedDocument]
) -> None:
    retriever = make_retriever(collection_name="recorded")
    retriever.add_embedded_documents(demo_embedded[:2], **MODELS, show_progress=False)
    record = retriever.storage.read_collection_record("recorded")
    assert record is not None
    record["vectors"]["dense"]["model"] = "bge-small-en-v1.5"  # as if built by another model
    retriever.storage.write_collection_record("recorded", record)
    with pytest.raises(
        CollectionMismatchError, match=re.escape("holds vectors of 'bge-small-en-v1.5'")
    ):
        retriever.add_embedded_documents(demo_embedded, **MODELS, show_progress=False)
    assert retriever.count() == 2

    lenient = make_retriever(
        collection_name="recorded", storage=retriever.storage, allow_model_mismatch=True
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lenient.add_embedded_documents(demo_embedded, **MODELS, show_progress=False)
    assert any(issubclass(w.category, ModelRecordWarning) for w in caught)
    assert lenient.count() == len(demo_embedded)


def test_bm25_is_computed_from_the_text_unless_given(
    make_retriever: Callable[..., HybridRetriever], demo_embedded: list[EmbeddedDocument]
) -> None:
    bm25 = Bm25Encoder()
    retriever = make_retriever(collection_name="bm25", bm25_encoder=bm25)
    given = SparseVector([1, 2], [1.0, 1.0])
    first = with_(demo_embedded[0], bm25=given)
    retriever.add_embedded_documents([first, demo_embedded[1]], **MODELS, show_progress=False)
    hits = retriever.invoke(demo_embedded[1].page_content, k=1, branches=("bm25",))
    assert hits[0].id == demo_embedded[1].id
    plain = make_retriever(collection_name="no_bm25", bm25_encoder=False)
    with pytest.raises(InvalidDocumentError, match="no BM25 branch"):
        plain.add_embedded_documents([first], **MODELS, show_progress=False)


def test_numpy_vectors_and_unordered_sparse_indices_are_written_as_lists(
    make_retriever: Callable[..., HybridRetriever], demo_embedded: list[EmbeddedDocument]
) -> None:
    import numpy as np

    as_lists = make_retriever(collection_name="lists")
    as_lists.add_embedded_documents(demo_embedded, **MODELS, show_progress=False)
    as_numpy = make_retriever(collection_name="numpy")
    converted = []
    for document in demo_embedded:
        sparse = document.sparse
        assert isinstance(sparse, SparseVector)
        order = list(reversed(range(len(sparse))))  # valid, just not in increasing order
        converted.append(
            with_(
                document,
                dense=np.asarray(document.dense, dtype=np.float32),
                sparse={
                    "indices": np.asarray(sparse.indices, dtype=np.int64)[order],
                    "values": np.asarray(sparse.values, dtype=np.float64)[order],
                },
            )
        )
    as_numpy.add_embedded_documents(converted, **MODELS, show_progress=False)
    for query in QUERIES:
        got, want = ranking(as_numpy, query), ranking(as_lists, query)
        assert [(i, t) for i, _, t in got] == [(i, t) for i, _, t in want]
        assert [s for _, s, _ in got] == pytest.approx([s for _, s, _ in want], abs=1e-6)
