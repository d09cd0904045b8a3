"""langchain-qdrant and this package read each other's collections (qdrant-client embedded
mode: langchain-qdrant does not speak Qdrant Edge), with the same two models on both sides."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from qdrant_client import QdrantClient

from hybrid_retriever import HybridRetriever, SentenceTransformerEncoder, SpladeEncoder

langchain_qdrant = pytest.importorskip("langchain_qdrant")

MakeRetriever = Callable[..., HybridRetriever]

QUERIES = [
    "what causes type 2 diabetes?",
    "how do you find planets around other stars",
    "why does bread dough rise",
]


class DenseEmbeddings(Embeddings):
    """Our dense encoder as the LangChain ``Embeddings`` langchain-qdrant takes."""

    def __init__(self, encoder: SentenceTransformerEncoder) -> None:
        self.encoder = encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encoder.encode_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.encode_query(text)


class SpladeSparseEmbeddings(langchain_qdrant.SparseEmbeddings):  # type: ignore[misc]
    """Our SPLADE encoder as langchain-qdrant's ``SparseEmbeddings``."""

    def __init__(self, encoder: SpladeEncoder) -> None:
        self.encoder = encoder

    def embed_documents(self, texts: list[str]) -> list[object]:
        return [self._convert(v) for v in self.encoder.encode_documents(texts)]

    def embed_query(self, text: str) -> object:
        return self._convert(self.encoder.encode_query(text))

    @staticmethod
    def _convert(vector: object) -> object:
        return langchain_qdrant.SparseVector(
            indices=list(vector.indices),  # type: ignore[attr-defined]
            values=list(vector.values),  # type: ignore[attr-defined]
        )


def _own(metadata: dict[str, object]) -> dict[str, object]:
    """Metadata without what each library adds to results (both use keys starting with _)."""
    return {k: v for k, v in metadata.items() if not k.startswith("_")}


def _their_store(
    client: QdrantClient,
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
    **names: str,
) -> object:
    return langchain_qdrant.QdrantVectorStore(
        client=client,
        collection_name="shared",
        embedding=DenseEmbeddings(dense_encoder),
        sparse_embedding=SpladeSparseEmbeddings(sparse_encoder),
        retrieval_mode=langchain_qdrant.RetrievalMode.HYBRID,
        **names,
    )


def test_we_read_a_langchain_qdrant_hybrid_collection(
    make_retriever: MakeRetriever,
    documents: list[Document],
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
) -> None:
    """Written by langchain-qdrant with its default vector names; its ids (point ids, UUIDs)
    come back as ``Document.id``, and both find the same top 1. (langchain-qdrant itself
    returns the point id in ``metadata["_id"]``.)"""
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, str(d.id))) for d in documents]
    theirs = langchain_qdrant.QdrantVectorStore.from_documents(
        [Document(page_content=d.page_content, metadata=d.metadata) for d in documents],
        ids=ids,
        embedding=DenseEmbeddings(dense_encoder),
        sparse_embedding=SpladeSparseEmbeddings(sparse_encoder),
        retrieval_mode=langchain_qdrant.RetrievalMode.HYBRID,
        location=":memory:",
        collection_name="shared",
    )
    ours = make_retriever(
        collection_name="shared",
        client=theirs.client,
        dense_vector_name=theirs.vector_name,
        sparse_vector_name=theirs.sparse_vector_name,
    )
    by_id = dict(zip(ids, documents, strict=True))
    for query in QUERIES:
        [their_top] = theirs.similarity_search(query, k=1)
        [our_top] = ours.invoke(query, k=1)
        assert our_top.id == their_top.metadata["_id"], query  # where it puts the point id
        assert our_top.page_content == by_id[str(our_top.id)].page_content
    assert [d.id for d in ours.get_by_ids(ids[:2])] == ids[:2]


def test_langchain_qdrant_reads_our_collection(
    make_retriever: MakeRetriever,
    documents: list[Document],
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
) -> None:
    """Written by us; langchain-qdrant, given our vector names, finds the same top 1 and
    knows each document by its point id (it does not read our ``document_id``)."""
    client = QdrantClient(":memory:")
    # The two vectors langchain-qdrant knows: its writes would leave a BM25 vector empty.
    ours = make_retriever(collection_name="shared", client=client, bm25_encoder=False)
    ours.add_documents(documents, show_progress=False)
    theirs = _their_store(
        client, dense_encoder, sparse_encoder, vector_name="dense", sparse_vector_name="sparse"
    )
    for query in QUERIES:
        [their_top] = theirs.similarity_search(query, k=1)  # type: ignore[attr-defined]
        [our_top] = ours.invoke(query, k=1)
        assert their_top.page_content == our_top.page_content, query
        assert _own(their_top.metadata) == _own(our_top.metadata)
        assert their_top.metadata["_id"] == our_top.metadata["_id"]  # both: the point id
    # What langchain-qdrant adds, we read, and the other way round.
    theirs.add_documents(  # type: ignore[attr-defined]
        [Document(page_content="Kimchi is fermented cabbage.", metadata={"topic": "food"})]
    )
    assert ours.invoke("fermented cabbage", k=1)[0].page_content == "Kimchi is fermented cabbage."
