"""End to end with the real bundled models on real Qdrant (embedded, in memory and on disk)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda
from qdrant_client import AsyncQdrantClient, QdrantClient, models

from hybrid_retriever import (
    Bm25Encoder,
    CollectionMismatchError,
    CollectionNotFoundError,
    HybridRetriever,
    InvalidParameterError,
    QdrantClientStorage,
)
from hybrid_retriever.documents import point_id

MakeRetriever = Callable[..., HybridRetriever]


def ids_of(docs: list[Document]) -> list[str]:
    return [d.metadata["_id"] for d in docs]


def test_hybrid_results_explain_themselves(demo_retriever: HybridRetriever) -> None:
    docs = demo_retriever.invoke("what causes type 2 diabetes?", k=3, fusion="rrf")
    assert len(docs) == 3
    top = docs[0]
    assert "diabetes" in top.page_content
    assert top.metadata["topic"] == "health"
    assert top.id == "bio-01"  # the id it was added with
    assert top.metadata["_id"] == point_id("bio-01", "", {})  # the Qdrant point id
    # Every branch of a new collection: BM25 is on by default.
    assert set(top.metadata["_ranks"]) == {"dense", "sparse", "bm25"}
    assert top.metadata["_ranks"]["dense"] == top.metadata["_ranks"]["sparse"] == 1
    # The fused score is the paper's RRF of the reported ranks.
    for doc in docs:
        expected = sum(1 / (60 + r) for r in doc.metadata["_ranks"].values() if r is not None)
        assert doc.metadata["_score"] == pytest.approx(expected)
    scores = [d.metadata["_score"] for d in docs]
    assert scores == sorted(scores, reverse=True)


def test_k_from_constructor_and_per_call(make_retriever: MakeRetriever, documents: list) -> None:
    retriever = make_retriever(k=2)
    retriever.add_documents(documents, show_progress=False)
    assert len(retriever.invoke("exercise")) == 2
    assert len(retriever.invoke("exercise", k=5)) == 5
    assert len(retriever.invoke("exercise", k=1000)) == len(documents)


def test_filter_applies_to_both_branches(demo_retriever: HybridRetriever) -> None:
    only_cooking = models.Filter(
        must=[models.FieldCondition(key="metadata.topic", match=models.MatchValue(value="cooking"))]
    )
    docs = demo_retriever.invoke("diabetes and insulin", k=10, filter=only_cooking)
    assert docs and {d.metadata["topic"] for d in docs} == {"cooking"}


def test_zero_weight_skips_a_branch(demo_retriever: HybridRetriever) -> None:
    dense_only = demo_retriever.invoke("bread yeast", k=3, weights={"sparse": 0.0})
    assert all(d.metadata["_ranks"]["sparse"] is None for d in dense_only)
    assert [d.metadata["_ranks"]["dense"] for d in dense_only] == [1, 2, 3]


def test_prefetch_depth_bounds_candidates(demo_retriever: HybridRetriever) -> None:
    docs = demo_retriever.invoke("planets", k=3, prefetch_k=3)
    for doc in docs:
        assert all(r is None or r <= 3 for r in doc.metadata["_ranks"].values())
    with pytest.raises(InvalidParameterError, match="prefetch_k=2 is below k=3"):
        demo_retriever.invoke("planets", k=3, prefetch_k=2)


def test_matches_qdrant_server_side_rrf(make_retriever: MakeRetriever, documents: list) -> None:
    """The same fused ranking as Qdrant's own RRF (k mapped to Qdrant's convention)."""
    client = QdrantClient(":memory:")
    retriever = make_retriever(collection_name="demo", client=client)
    retriever.add_documents(documents, show_progress=False)
    query = "energy saving in sport"
    ours = retriever.invoke(query, k=10, prefetch_k=20, fusion="rrf")
    sparse = retriever.sparse_encoder.encode_query(query)
    assert isinstance(retriever.bm25_encoder, Bm25Encoder)  # a new collection: three branches
    bm25 = retriever.bm25_encoder.encode_query(query)
    theirs = client.query_points(
        "demo",
        prefetch=[
            models.Prefetch(
                query=retriever.dense_encoder.encode_query(query), using="dense", limit=20
            ),
            models.Prefetch(
                query=models.SparseVector(indices=sparse.indices, values=sparse.values),
                using="sparse",
                limit=20,
            ),
            models.Prefetch(
                query=models.SparseVector(indices=bm25.indices, values=bm25.values),
                using="bm25",
                limit=20,
            ),
        ],
        query=models.RrfQuery(rrf=models.Rrf(k=61)),
        limit=10,
    ).points
    assert ids_of(ours) == [str(p.id) for p in theirs]
    assert [d.metadata["_score"] for d in ours] == pytest.approx([p.score for p in theirs])


def test_reindexing_creates_no_duplicates(
    make_retriever: MakeRetriever, documents: list, engine: str
) -> None:
    retriever = make_retriever(collection_name="again", engine=engine)
    first = retriever.add_documents(documents, show_progress=False)
    second = retriever.add_documents(documents, show_progress=False)
    assert first == second
    assert retriever.count() == len(documents)
    texts = ["alpha beta", "gamma delta", "alpha beta"]
    ids = retriever.add_texts(texts, show_progress=False)
    assert ids[0] == ids[2] and ids[0] != ids[1]
    assert retriever.count() == len(documents) + 2


def test_generators_are_consumed_batch_by_batch(
    make_retriever: MakeRetriever, documents: list
) -> None:
    pulled = 0

    def stream() -> Iterator[Document]:
        nonlocal pulled
        for doc in documents:
            pulled += 1
            yield doc

    pulled_at_upsert: list[int] = []

    class Spy(QdrantClientStorage):
        def upsert(self, collection: str, points: Any) -> None:
            pulled_at_upsert.append(pulled)
            super().upsert(collection, points)

    retriever = make_retriever(storage=Spy(QdrantClient(":memory:")))
    ids = retriever.add_documents(stream(), batch_size=10, show_progress=False)
    assert len(ids) == len(documents)
    # Writes overlap with encoding the next batch, so the source may be one batch
    # ahead of the write in progress, never more.
    assert len(pulled_at_upsert) == 4
    for number, pulled_then in enumerate(pulled_at_upsert, start=1):
        assert min(10 * number, len(documents)) <= pulled_then
        assert pulled_then <= min(10 * (number + 1), len(documents))


def test_delete_and_get_by_ids(make_retriever: MakeRetriever, documents: list, engine: str) -> None:
    retriever = make_retriever(engine=engine)
    ids = retriever.add_documents(documents[:5], show_progress=False)
    assert {d.id for d in retriever.get_by_ids(ids[:2])} == set(ids[:2])
    retriever.delete(ids[:2])
    assert retriever.count() == 3
    assert retriever.get_by_ids(ids[:2]) == []
    assert ids[0] not in ids_of(retriever.invoke(documents[0].page_content, k=5))


def test_on_disk_reopen_gives_same_results(
    make_retriever: MakeRetriever, documents: list, tmp_path: Path, engine: str
) -> None:
    path = str(tmp_path / "qdrant")
    queries = ["red blood cells and oxygen", "history of printing", "melting sea ice"]
    retriever = make_retriever(collection_name="disk", path=path, engine=engine)
    retriever.add_documents(documents, show_progress=False)
    before = [ids_of(retriever.invoke(q, k=5)) for q in queries]
    retriever.close()

    reopened = make_retriever(collection_name="disk", path=path)  # engine detected from disk
    assert type(reopened.storage) is type(retriever.storage)
    assert reopened.count() == len(documents)
    assert [ids_of(reopened.invoke(q, k=5)) for q in queries] == before


def test_read_only_use_of_missing_collection(make_retriever: MakeRetriever, engine: str) -> None:
    retriever = make_retriever(collection_name="nope", engine=engine)
    with pytest.raises(CollectionNotFoundError, match="'nope' does not exist"):
        retriever.invoke("anything")


def test_mismatched_collection_is_refused_and_left_alone(make_retriever: MakeRetriever) -> None:
    client = QdrantClient(":memory:")
    client.create_collection(
        "other",
        vectors_config={"dense": models.VectorParams(size=768, distance=models.Distance.DOT)},
    )
    client.upsert("other", [models.PointStruct(id=1, vector={"dense": [0.0] * 768})])
    retriever = make_retriever(collection_name="other", client=client)
    with pytest.raises(CollectionMismatchError) as error:
        retriever.invoke("query")
    message = str(error.value)
    assert "768 dimensions" in message and "produces 384" in message
    assert "Dot distance, not Cosine" in message
    assert "no sparse vector named 'sparse'" in message
    with pytest.raises(CollectionMismatchError):
        retriever.add_texts(["text"], show_progress=False)
    assert client.count("other").count == 1  # untouched


def test_custom_vector_names_read_a_foreign_collection(
    make_retriever: MakeRetriever, documents: list
) -> None:
    client = QdrantClient(":memory:")
    writer = make_retriever(
        collection_name="lc",
        client=client,
        dense_vector_name="text-dense",
        sparse_vector_name="langchain-sparse",
    )
    writer.add_documents(documents, show_progress=False)
    reader = make_retriever(collection_name="lc", client=client)
    with pytest.raises(CollectionMismatchError, match="no dense vector named 'dense'"):
        reader.invoke("bread")
    payload = client.scroll("lc", limit=1)[0][0].payload
    # langchain-qdrant's layout, plus the document's own id
    assert set(payload) == {"page_content", "metadata", "document_id"}


def test_k_is_validated_at_construction() -> None:
    with pytest.raises(InvalidParameterError, match="k must be"):
        HybridRetriever(k=0)


def test_unknown_search_option(demo_retriever: HybridRetriever) -> None:
    with pytest.raises(InvalidParameterError, match="Unknown search options"):
        demo_retriever.invoke("bread", top_k=3)


def test_bad_filter(demo_retriever: HybridRetriever) -> None:
    with pytest.raises(InvalidParameterError, match="Filter"):
        demo_retriever.invoke("bread", filter={"topic": "cooking"})


def test_retriever_in_a_chain(demo_retriever: HybridRetriever) -> None:
    chain = demo_retriever | RunnableLambda(lambda docs: [d.metadata["topic"] for d in docs])
    assert chain.invoke("neutron stars")[0] == "astronomy"
    batched = demo_retriever.batch(["neutron stars", "sourdough"], config={"max_concurrency": 2})
    assert [docs[0].metadata["topic"] for docs in batched] == ["astronomy", "cooking"]


async def test_async_matches_sync(demo_retriever: HybridRetriever) -> None:
    # Exactly, scores included: the query vector is computed the same way in the worker
    # thread as in the caller (each query alone, fixed threads; encoders/threads.py).
    query = "how do heat pumps work"
    found = await demo_retriever.ainvoke(query, k=4)
    demo_retriever._query_cache.clear()
    expected = demo_retriever.invoke(query, k=4)
    assert [(d.id, d.metadata["_score"], d.metadata["_scores"]) for d in found] == [
        (d.id, d.metadata["_score"], d.metadata["_scores"]) for d in expected
    ]


async def test_native_async_client(make_retriever: MakeRetriever, documents: list) -> None:
    """Only an AsyncQdrantClient: everything goes through its coroutines."""
    retriever = make_retriever(collection_name="async", async_client=AsyncQdrantClient(":memory:"))
    ids = await retriever.aadd_documents(documents, show_progress=False)
    docs = await retriever.ainvoke("Gutenberg printing press", k=2)
    assert docs[0].metadata["topic"] == "history"
    await retriever.adelete(ids[:1])
    counted = await retriever.storage.async_client.count("async")  # type: ignore[attr-defined]
    assert counted.count == len(documents) - 1
    with pytest.raises(Exception, match="only an AsyncQdrantClient"):
        retriever.invoke("sync use")


def test_connection_arguments_are_exclusive() -> None:
    with pytest.raises(InvalidParameterError, match="only one of"):
        HybridRetriever(location=":memory:", path="/tmp/x")
    with pytest.raises(InvalidParameterError, match="not both"):
        HybridRetriever(client=QdrantClient(":memory:"), path="/tmp/x")
    with pytest.raises(InvalidParameterError, match="cannot be used here"):
        HybridRetriever(url="http://localhost:6333", engine="edge")
    with pytest.raises(InvalidParameterError, match="Unknown engine"):
        HybridRetriever(engine="elastic")


def test_api_key_never_in_repr() -> None:
    retriever = HybridRetriever(url="http://localhost:6333", api_key="s3cret-key")
    assert "s3cret" not in repr(retriever)
    assert "s3cret" not in repr(retriever.storage)


def test_upsert_writes_every_vector(make_retriever: MakeRetriever, documents: list) -> None:
    client = QdrantClient(":memory:")
    make_retriever(client=client).add_documents(documents, show_progress=False)
    records, _ = client.scroll("documents", limit=100, with_vectors=True)
    assert len(records) == len(documents)
    assert all(set(r.vector) == {"dense", "sparse", "bm25"} for r in records)
    make_retriever(client=client, collection_name="two", bm25_encoder=False).add_documents(
        documents, show_progress=False
    )
    records, _ = client.scroll("two", limit=100, with_vectors=True)
    assert all(set(r.vector) == {"dense", "sparse"} for r in records)


def test_fusion_config_file_sets_the_fusion_and_explicit_arguments_win(
    make_retriever: Any, tmp_path: Path
) -> None:
    from hybrid_retriever.fusion.config import FusionConfig
    from hybrid_retriever.fusion.methods import FusionMethod

    path = tmp_path / "fusion.json"
    FusionConfig(
        method=FusionMethod.CONVEX, weights={"dense": 2.0, "sparse": 1.0}, prefetch_k=20
    ).save(path)
    tuned = make_retriever(fusion_config=path)
    assert (tuned.fusion, tuned.weights, tuned.prefetch_k) == (
        FusionMethod.CONVEX,
        {"dense": 2.0, "sparse": 1.0},
        20,
    )
    overridden = make_retriever(fusion_config=str(path), fusion="rrf", prefetch_k=50)
    assert (overridden.fusion, overridden.prefetch_k) == (FusionMethod.RRF, 50)
    with pytest.raises(InvalidParameterError, match="does not exist"):
        make_retriever(fusion_config=tmp_path / "missing.json")
