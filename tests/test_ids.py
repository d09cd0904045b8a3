"""The caller's ids round-trip: stored with the point, returned by every read, accepted by
``get_by_ids`` and ``delete``; on both embedded engines."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.documents import Document

from hybrid_retriever import HybridRetriever
from hybrid_retriever.collection import CONTENT_KEY, METADATA_KEY
from hybrid_retriever.documents import ID_NAMESPACE, point_id
from hybrid_retriever.storage.base import StoredPoint

MakeRetriever = Callable[..., HybridRetriever]

FOOD = [
    Document(id="food-01", page_content="Yeast makes bread dough rise.", metadata={"n": 1}),
    Document(id="food-02", page_content="Olive oil is pressed from olives.", metadata={"n": 2}),
    Document(id="space-01", page_content="Mars is the fourth planet from the sun.", metadata={}),
]


@pytest.fixture()
def food(make_retriever: MakeRetriever, engine: str) -> HybridRetriever:
    retriever = make_retriever(collection_name="food", engine=engine)
    assert retriever.add_documents(FOOD, show_progress=False) == ["food-01", "food-02", "space-01"]
    return retriever


def test_results_carry_the_callers_id(food: HybridRetriever) -> None:
    top = food.invoke("bread", k=1)[0]
    assert top.id == "food-01"
    assert top.metadata["_id"] == point_id("food-01", "", {})  # the point id, for Qdrant


async def test_async_results_carry_the_callers_id(food: HybridRetriever) -> None:
    assert (await food.ainvoke("bread", k=1))[0].id == "food-01"
    assert [d.id for d in (await food.abatch(["olives", "planet"], k=1))[1]] == ["space-01"]


def test_get_by_ids_takes_the_callers_ids_in_order(food: HybridRetriever) -> None:
    found = food.get_by_ids(["space-01", "missing", "food-01"])
    assert found == [FOOD[2], FOOD[0]]  # as added: id, text and metadata


async def test_aget_by_ids_takes_the_callers_ids(food: HybridRetriever) -> None:
    assert await food.aget_by_ids(["food-02"]) == [FOOD[1]]


def test_delete_takes_the_callers_ids(food: HybridRetriever) -> None:
    food.delete(["food-01", "never-added"])
    assert food.count() == 2
    assert food.get_by_ids(["food-01"]) == []
    assert "food-01" not in {d.id for d in food.invoke("bread", k=3)}


async def test_adelete_takes_the_callers_ids(food: HybridRetriever) -> None:
    await food.adelete(["food-02"])
    assert food.get_by_ids(["food-01", "food-02", "space-01"]) == [FOOD[0], FOOD[2]]


def test_point_ids_are_still_accepted(food: HybridRetriever) -> None:
    pid = food.invoke("bread", k=1)[0].metadata["_id"]
    assert food.get_by_ids([pid]) == [FOOD[0]]
    food.delete([pid])
    assert food.get_by_ids(["food-01"]) == []


def test_int_ids_round_trip_as_strings(make_retriever: MakeRetriever, engine: str) -> None:
    retriever = make_retriever(collection_name="ints", engine=engine)
    ids = retriever.add_texts(["Yeast makes bread dough rise.", "Mars is red."], ids=[7, 8])
    assert ids == ["7", "8"]
    assert retriever.invoke("bread", k=1)[0].id == "7"
    assert [d.id for d in retriever.get_by_ids([8, "7"])] == ["8", "7"]  # 7 and "7" are one
    retriever.delete([8])
    assert retriever.count() == 1


def test_documents_without_ids_get_a_content_id_that_works_everywhere(
    make_retriever: MakeRetriever, engine: str
) -> None:
    retriever = make_retriever(collection_name="anonymous", engine=engine)
    docs = [Document(page_content="Yeast makes bread dough rise.")]
    [content_id] = retriever.add_documents(docs, show_progress=False)
    assert content_id == point_id(None, docs[0].page_content, {})
    assert retriever.invoke("bread", k=1)[0].id == content_id
    # A document read back and added again replaces itself: no duplicate.
    [again] = retriever.get_by_ids([content_id])
    assert retriever.add_documents([again], show_progress=False) == [content_id]
    assert retriever.count() == 1
    retriever.delete([content_id])
    assert retriever.count() == 0


def _write_without_stored_ids(retriever: HybridRetriever, docs: list[tuple[str, Document]]) -> None:
    """Points as versions before 0.2 wrote them: no ``document_id`` in the payload."""
    texts = [d.page_content for _, d in docs]
    dense = retriever.dense_encoder.encode_documents(texts)
    sparse = retriever.sparse_encoder.encode_documents(texts)
    retriever.storage.upsert(
        retriever.collection_name,
        [
            StoredPoint(
                id=pid,
                vectors={"dense": d, "sparse": s},
                payload={CONTENT_KEY: doc.page_content, METADATA_KEY: doc.metadata},
            )
            for (pid, doc), d, s in zip(docs, dense, sparse, strict=True)
        ],
    )


def test_a_collection_written_without_stored_ids_keeps_working(
    make_retriever: MakeRetriever, engine: str
) -> None:
    """Older points are known by their point ids: returned, read and deleted by them, and a
    document read back and added again replaces itself."""
    retriever = make_retriever(collection_name="old", engine=engine)
    retriever.add_documents(FOOD[1:], show_progress=False)  # creates the collection
    old_pid = point_id("food-01", "", {})
    _write_without_stored_ids(retriever, [(old_pid, FOOD[0])])
    top = retriever.invoke("bread", k=1)[0]
    assert top.id == old_pid and top.metadata["_id"] == old_pid
    [read] = retriever.get_by_ids([old_pid])
    assert read.page_content == FOOD[0].page_content
    assert retriever.add_documents([read], show_progress=False) == [old_pid]
    assert retriever.count() == 3
    # Its own id, hashed as before, still names it too.
    assert [d.page_content for d in retriever.get_by_ids(["food-01"])] == [FOOD[0].page_content]
    retriever.delete([old_pid])
    assert retriever.count() == 2


def test_an_older_copy_of_a_uuid_id_is_replaced_not_duplicated(
    make_retriever: MakeRetriever, engine: str
) -> None:
    """Before ids were stored, a UUID id was hashed like any other; re-adding that document
    now stores it under the UUID itself and removes the hashed copy."""
    own = str(uuid.uuid4())
    doc = Document(id=own, page_content="Yeast makes bread dough rise.")
    retriever = make_retriever(collection_name="uuids", engine=engine)
    retriever.add_documents(FOOD[1:], show_progress=False)
    _write_without_stored_ids(retriever, [(str(uuid.uuid5(ID_NAMESPACE, own)), doc)])
    assert retriever.count() == 3
    assert retriever.add_documents([doc], show_progress=False) == [own]
    assert retriever.count() == 3
    assert retriever.get_by_ids([own]) == [doc]
    assert retriever.invoke("bread", k=1)[0].metadata["_id"] == own


async def test_async_writes_return_and_store_the_callers_ids(
    make_retriever: MakeRetriever, engine: str
) -> None:
    retriever = make_retriever(collection_name="async", engine=engine)
    assert await retriever.aadd_documents(FOOD, show_progress=False) == [d.id for d in FOOD]
    assert (await retriever.ainvoke("planet", k=1))[0].id == "space-01"


def test_a_document_and_ids_argument_disagreeing_uses_ids(
    make_retriever: MakeRetriever, engine: str
) -> None:
    """``ids=`` wins over ``Document.id`` (LangChain's convention), and is what comes back."""
    retriever = make_retriever(collection_name="override", engine=engine)
    kwargs: dict[str, Any] = {"ids": ["given"], "show_progress": False}
    assert retriever.add_documents([FOOD[0]], **kwargs) == ["given"]
    assert retriever.invoke("bread", k=1)[0].id == "given"
    assert retriever.get_by_ids(["food-01"]) == []
