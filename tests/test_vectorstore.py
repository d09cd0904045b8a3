"""``HybridVectorStore``: LangChain's standard VectorStore suite on both embedded engines,
LangChain's indexing API end to end, and what the store adds on top of the retriever."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from langchain_core.documents import Document
from langchain_core.indexing import InMemoryRecordManager, aindex, index
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from hybrid_retriever import (
    HybridRetriever,
    HybridVectorStore,
    InvalidParameterError,
    SentenceTransformerEncoder,
    SpladeEncoder,
)


class _StandardSuite(VectorStoreIntegrationTests):
    """The suite uses fake embeddings of its own; ours are the real models, and the suite
    only needs the store to behave as a VectorStore."""

    engine: ClassVar[str]

    @pytest.fixture()
    def vectorstore(  # type: ignore[override]
        self, dense_encoder: SentenceTransformerEncoder, sparse_encoder: SpladeEncoder
    ) -> Iterator[HybridVectorStore]:
        store = HybridVectorStore(
            collection_name="standard",
            engine=self.engine,
            dense_encoder=dense_encoder,
            sparse_encoder=sparse_encoder,
        )
        try:
            yield store
        finally:
            store.close()


class TestStandardOnEdge(_StandardSuite):
    engine = "edge"


class TestStandardOnQdrantClient(_StandardSuite):
    engine = "qdrant-client"


@pytest.fixture()
def store(
    engine: str, dense_encoder: SentenceTransformerEncoder, sparse_encoder: SpladeEncoder
) -> Iterator[HybridVectorStore]:
    built = HybridVectorStore(
        collection_name="synced",
        engine=engine,
        dense_encoder=dense_encoder,
        sparse_encoder=sparse_encoder,
    )
    yield built
    built.close()


def _chunks(source: str, *texts: str) -> list[Document]:
    return [Document(page_content=t, metadata={"source": source}) for t in texts]


def test_indexing_api_keeps_the_collection_in_sync(store: HybridVectorStore) -> None:
    """LangChain's ``index`` with a record manager: add all, skip unchanged, replace an edited
    chunk, delete the chunks a source no longer has, and (full cleanup) a removed source."""
    manager = InMemoryRecordManager(namespace="hybrid/synced")
    manager.create_schema()
    bread = _chunks("bread.md", "Yeast makes bread dough rise.", "Sourdough uses wild yeast.")
    space = _chunks("space.md", "Mars is the fourth planet.", "Jupiter is a gas giant.")

    def sync(docs: list[Document], cleanup: Any = "incremental") -> dict[str, int]:
        return dict(
            index(
                docs, manager, store, cleanup=cleanup, source_id_key="source", key_encoder="sha256"
            )
        )

    assert sync(bread + space) == {
        "num_added": 4,
        "num_updated": 0,
        "num_skipped": 0,
        "num_deleted": 0,
    }
    assert store.retriever.count() == 4

    assert sync(bread + space)["num_skipped"] == 4
    assert store.retriever.count() == 4

    edited = [bread[0], Document(page_content="Rye bread is dense.", metadata=bread[1].metadata)]
    assert sync(edited + space) == {
        "num_added": 1,
        "num_updated": 0,
        "num_skipped": 3,
        "num_deleted": 1,
    }
    assert store.retriever.count() == 4
    texts = {d.page_content for d in store.similarity_search("bread", k=4)}
    assert "Rye bread is dense." in texts and "Sourdough uses wild yeast." not in texts

    # A source that lost a chunk: incremental cleanup deletes exactly that chunk.
    assert sync(edited + space[:1])["num_deleted"] == 1
    assert store.retriever.count() == 3

    # A source removed altogether: full cleanup deletes its chunks.
    assert sync(edited, cleanup="full")["num_deleted"] == 1
    assert store.retriever.count() == 2
    assert {d.metadata["source"] for d in store.similarity_search("planet", k=4)} == {"bread.md"}


async def test_async_indexing_api_adds_then_skips(store: HybridVectorStore) -> None:
    manager = InMemoryRecordManager(namespace="hybrid/async")
    await manager.acreate_schema()
    docs = _chunks("bread.md", "Yeast makes bread dough rise.", "Sourdough uses wild yeast.")
    kwargs: dict[str, Any] = {"cleanup": "incremental", "source_id_key": "source"}
    first = await aindex(docs, manager, store, key_encoder="sha256", **kwargs)
    assert (first["num_added"], store.retriever.count()) == (2, 2)
    second = await aindex(docs, manager, store, key_encoder="sha256", **kwargs)
    assert (second["num_skipped"], store.retriever.count()) == (2, 2)


def test_search_with_score_returns_the_documents_as_added_and_the_fused_score(
    store: HybridVectorStore,
) -> None:
    store.add_documents(
        [
            Document(id="food-01", page_content="Yeast makes bread dough rise.", metadata={"a": 1}),
            Document(id="space-01", page_content="Mars is the fourth planet."),
        ],
        show_progress=False,
    )
    (doc, score), (other, other_score) = store.similarity_search_with_score("bread", k=2)
    assert doc == Document(
        id="food-01", page_content="Yeast makes bread dough rise.", metadata={"a": 1}
    )
    assert other.id == "space-01"
    ranked = store.retriever.invoke("bread", k=2)
    assert [score, other_score] == [d.metadata["_score"] for d in ranked]
    assert score > other_score


def test_as_retriever_is_the_hybrid_retriever_with_its_options(store: HybridVectorStore) -> None:
    store.add_texts(
        ["Yeast makes bread dough rise.", "Mars is the fourth planet.", "Olive oil."],
        ids=["food-01", "space-01", "food-02"],
    )
    retriever = store.as_retriever(search_kwargs={"k": 2}, fusion="rrf")
    assert isinstance(retriever, HybridRetriever)
    assert retriever.storage is store.retriever.storage
    assert (retriever.k, retriever.fusion.value) == (2, "rrf")
    found = retriever.invoke("bread")
    assert len(found) == 2 and found[0].id == "food-01"
    with pytest.raises(InvalidParameterError, match="search_type='bogus' is not supported"):
        store.as_retriever(search_type="bogus")


def test_from_texts_builds_a_searchable_store(
    dense_encoder: SentenceTransformerEncoder, sparse_encoder: SpladeEncoder
) -> None:
    built = HybridVectorStore.from_texts(
        ["Yeast makes bread dough rise.", "Mars is the fourth planet."],
        metadatas=[{"topic": "food"}, {"topic": "space"}],
        ids=["food-01", "space-01"],
        collection_name="from-texts",
        dense_encoder=dense_encoder,
        sparse_encoder=sparse_encoder,
        show_progress=False,
    )
    try:
        assert built.similarity_search("planet", k=1)[0].id == "space-01"
    finally:
        built.close()


def test_bad_calls_get_the_packages_errors(store: HybridVectorStore) -> None:
    with pytest.raises(InvalidParameterError, match="delete needs ids="):
        store.delete()
    with pytest.raises(InvalidParameterError, match="Unknown arguments"):
        store.add_texts(["t"], upsert_mode="x")
    with pytest.raises(InvalidParameterError, match="either retriever= or"):
        HybridVectorStore(store.retriever, collection_name="x")
