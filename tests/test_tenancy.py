"""Tenant-bound retrievers never see, overwrite or delete another tenant's documents,
whatever filter or ids they are given (``hybrid_retriever.tenancy``), on both embedded
engines, with the real encoders.

The property test starts each example from the same small collection (documents of
tenants A and B, some sharing ids, plus documents an unbound writer made), runs random
searches (random filters with should / must_not / min_should / nested clauses, has_id on
the other tenant's points), reads, deletes and writes by ids of both tenants through the
retriever bound to A, and after each step compares the whole stored collection with a
model: B's and the unbound writer's points never change, A's change exactly as A's own
writes and deletes say, and nothing A is given back belongs to anyone else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from qdrant_client.http import models

from hybrid_retriever import (
    HybridRetriever,
    HybridVectorStore,
    InvalidDocumentError,
    InvalidParameterError,
    SentenceTransformerEncoder,
    SpladeEncoder,
)
from hybrid_retriever.collection import DOCUMENT_ID_KEY, METADATA_KEY
from hybrid_retriever.storage.base import StorageBackend

TOPICS = ("food", "space", "sea")
TEXTS = {
    "food": ["Yeast makes bread rise.", "Olive oil is pressed from olives.", "Rice needs water."],
    "space": ["Neutron stars are dense.", "Mars has two moons.", "Comets have icy tails."],
    "sea": ["Coral reefs shelter fish.", "Tides follow the moon.", "Whales sing underwater."],
}
SHARED_IDS = ["d0", "d1", "d2", "d3"]
"""Ids both tenants use for different documents."""
QUERIES = ["bread", "stars and moons", "fish in the sea", "water"]


def _text(i: int) -> str:
    topic = TOPICS[i % 3]
    return TEXTS[topic][(i // 3) % 3]


def _corpus() -> dict[str | None, list[tuple[str | int, Document]]]:
    """Per writer (tenant A, tenant B, None: an unbound writer), its (id, document)s."""
    corpus: dict[str | None, list[tuple[str | int, Document]]] = {}
    for tenant, offset in (("A", 0), ("B", 1)):
        ids: list[str | int] = [*SHARED_IDS, f"{tenant.lower()}-only", 7]
        corpus[tenant] = [
            (
                doc_id,
                Document(
                    page_content=f"{tenant}: {_text(i + offset)}",
                    metadata={"topic": TOPICS[(i + offset) % 3], "n": i},
                ),
            )
            for i, doc_id in enumerate(ids)
        ]
    corpus[None] = [
        # written before any binding: tenant A's and B's by metadata, and one of nobody's
        ("legacy-a", Document(page_content="A legacy: " + _text(4), metadata={"tenant": "A"})),
        ("legacy-b", Document(page_content="B legacy: " + _text(5), metadata={"tenant": "B"})),
        (
            str(uuid.UUID(int=42)),
            Document(page_content="B uuid: " + _text(6), metadata={"tenant": "B", "n": 3}),
        ),
        ("free", Document(page_content="No tenant: " + _text(7), metadata={"topic": "sea"})),
    ]
    return corpus


class Template:
    """The starting collection, stored once per engine and copied into each example."""

    def __init__(
        self,
        storage: StorageBackend,
        spec: Any,
        record: dict[str, Any],
        points: list[Any],
        encoders: dict[str, Any],
    ) -> None:
        self.storage, self.spec, self.record = storage, spec, record
        self.points, self.encoders = points, encoders
        self.counter = [0]

    def __repr__(self) -> str:
        return f"Template({self.storage!r})"

    def fresh(self, **kwargs: Any) -> tuple[str, HybridRetriever, HybridRetriever]:
        """A new collection holding the template's points; retrievers bound to A and B."""
        self.counter[0] += 1
        name = f"case{self.counter[0]}"
        spec = dataclasses.replace(self.spec, name=name)
        self.storage.create_recorded_collection(spec, self.record)
        self.storage.upsert(name, self.points)
        bound = [
            HybridRetriever(
                collection_name=name, storage=self.storage, tenant=t, **self.encoders, **kwargs
            )
            for t in ("A", "B")
        ]
        return name, bound[0], bound[1]


@pytest.fixture(scope="module", params=("edge", "qdrant-client"))
def template(
    request: pytest.FixtureRequest,
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
) -> Iterator[Template]:
    encoders = {"dense_encoder": dense_encoder, "sparse_encoder": sparse_encoder}
    unbound = HybridRetriever(collection_name="template", engine=request.param, **encoders)
    for tenant, documents in _corpus().items():
        writer = (
            unbound
            if tenant is None
            else HybridRetriever(
                collection_name="template", storage=unbound.storage, tenant=tenant, **encoders
            )
        )
        writer.add_documents(
            [d for _, d in documents], ids=[i for i, _ in documents], show_progress=False
        )
    storage = unbound.storage
    points = [p for batch in storage.scroll_points("template", batch_size=100) for p in batch]
    record = storage.read_collection_record("template")
    assert record is not None and len(points) == 4 + 2 * (len(SHARED_IDS) + 2)
    yield Template(storage, unbound.collection_spec(), record, points, encoders)
    unbound.close()


def _snapshot(storage: StorageBackend, name: str) -> dict[str, tuple[Any, str, str]]:
    """Every stored point: point id -> (tenant, document id, text)."""
    return {
        p.id: (
            (p.payload.get(METADATA_KEY) or {}).get("tenant"),
            str(p.payload.get(DOCUMENT_ID_KEY, p.id)),
            p.payload["page_content"],
        )
        for batch in storage.scroll_points(name, batch_size=100)
        for p in batch
    }


# -- random filters -----------------------------------------------------------------------

_TENANT_VALUES = st.sampled_from(["A", "B", "C", 7])


_TENANT_KEY = "metadata.tenant"


def _tenant_is(value: Any) -> Any:
    return models.FieldCondition(key=_TENANT_KEY, match=models.MatchValue(value=value))


def _tenant_in(values: list[str]) -> Any:
    return models.FieldCondition(key=_TENANT_KEY, match=models.MatchAny(any=values))


def _tenant_not_in(values: list[str]) -> Any:
    return models.FieldCondition(key=_TENANT_KEY, match=models.MatchExcept(**{"except": values}))


def _topic_is(topic: str) -> Any:
    return models.FieldCondition(key="metadata.topic", match=models.MatchValue(value=topic))


def _n_at_least(n: int) -> Any:
    return models.FieldCondition(key="metadata.n", range=models.Range(gte=n))


def _has_id(ids: list[str]) -> Any:
    return models.HasIdCondition(has_id=ids)


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    clauses = st.lists(inner, max_size=2)
    return st.builds(_filter, clauses, clauses, clauses, clauses)


def _conditions(point_ids: list[str]) -> st.SearchStrategy[Any]:
    leaf = st.one_of(
        _TENANT_VALUES.map(_tenant_is),
        st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3).map(_tenant_in),
        st.lists(st.sampled_from(["A", "B"]), min_size=1, max_size=2).map(_tenant_not_in),
        st.sampled_from(TOPICS).map(_topic_is),
        st.integers(0, 6).map(_n_at_least),
        st.just(models.IsEmptyCondition(is_empty=models.PayloadField(key=_TENANT_KEY))),
        st.lists(st.sampled_from(point_ids), min_size=1, max_size=4).map(_has_id),
    )
    return st.recursive(leaf, _nested, max_leaves=6)


def _filter(must: list[Any], should: list[Any], must_not: list[Any], at_least: list[Any]) -> Any:
    return models.Filter(
        must=must or None,
        should=should or None,
        must_not=must_not or None,
        min_should=models.MinShould(conditions=at_least, min_count=1) if at_least else None,
    )


def _filters(point_ids: list[str]) -> st.SearchStrategy[Any]:
    conditions = _conditions(point_ids)
    return st.one_of(
        st.none(),
        st.builds(
            _filter,
            st.lists(conditions, max_size=2),
            st.lists(conditions, max_size=3),
            st.lists(conditions, max_size=2),
            st.lists(conditions, max_size=2),
        ),
    )


def _ids(point_ids: list[str]) -> st.SearchStrategy[list[Any]]:
    every = [*SHARED_IDS, "a-only", "b-only", 7, "7", "legacy-a", "legacy-b", "free"]
    return st.lists(
        st.one_of(
            st.sampled_from(every), st.sampled_from(point_ids), st.just(str(uuid.UUID(int=42)))
        ),
        min_size=1,
        max_size=5,
    )


def _operations(point_ids: list[str]) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    search = st.tuples(
        st.just("search"), st.sampled_from(QUERIES), _filters(point_ids), st.integers(1, 25)
    )
    get = st.tuples(st.just("get"), _ids(point_ids))
    delete = st.tuples(st.just("delete"), _ids(point_ids))
    write = st.tuples(
        st.just("write"),
        st.sampled_from(
            [*SHARED_IDS, "b-only", "legacy-a", "legacy-b", "new", 7, str(uuid.UUID(int=42))]
        ),
        st.integers(0, 8),
    )
    return st.lists(st.one_of(search, get, delete, write), min_size=1, max_size=5)


def _names(given: list[Any]) -> set[str]:
    return {str(i) for i in given}


def _check_property(template: Template, data: st.DataObject) -> None:
    name, a, _ = template.fresh()
    model = _snapshot(template.storage, name)
    point_ids = sorted(model)
    for op in data.draw(_operations(point_ids)):
        kind = op[0]
        a_docs = {pid: v for pid, v in model.items() if v[0] == "A"}
        if kind == "search":
            _, query, query_filter, k = op
            found = a.invoke(query, k=k, filter=query_filter)
            event("search: some found" if found else "search: none found")
            for doc in found:
                assert doc.metadata["_id"] in a_docs, (doc, query_filter)
                assert doc.metadata["tenant"] == "A"
                assert a_docs[doc.metadata["_id"]][2] == doc.page_content
            if query_filter is None:  # confinement hides nothing of A's own
                assert len(found) == min(k, len(a_docs))
        elif kind == "get":
            asked = _names(op[1])
            got = a.get_by_ids(op[1])
            event("get: some found" if got else "get: none found")
            expected = {pid for pid, v in a_docs.items() if v[1] in asked or pid in asked}
            assert {d.metadata.get("tenant") for d in got} <= {"A"}
            assert {(d.id, d.page_content) for d in got} == {
                (a_docs[pid][1], a_docs[pid][2]) for pid in expected
            }
        elif kind == "delete":
            asked = _names(op[1])
            a.delete(op[1])
            event(
                f"delete: {sum(1 for p, v in a_docs.items() if v[1] in asked or p in asked)} of A's"
            )
            for pid, v in a_docs.items():
                if v[1] in asked or pid in asked:
                    del model[pid]
        else:
            _, doc_id, i = op
            text = f"A new: {_text(i)}"
            a.add_documents([Document(page_content=text)], ids=[doc_id], show_progress=False)
            for pid, v in a_docs.items():  # A's older copy of this id, if any, is replaced
                if v[1] == str(doc_id):
                    del model[pid]
            model[a.tenancy.point_id(doc_id)] = ("A", str(doc_id), text)  # type: ignore[union-attr]
        assert _snapshot(template.storage, name) == model, op
        assert a.count() == sum(1 for v in model.values() if v[0] == "A")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_tenant_bound_retriever_never_reaches_another_tenant(
    template: Template, data: st.DataObject
) -> None:
    _check_property(template, data)


# -- the parts one by one -------------------------------------------------------------------


def test_same_ids_in_two_tenants_are_two_documents(template: Template) -> None:
    _, a, b = template.fresh()
    assert [d.page_content for d in a.get_by_ids(["d0"])] == ["A: " + _text(0)]
    assert [d.page_content for d in b.get_by_ids(["d0"])] == ["B: " + _text(1)]
    a.add_texts(["A rewrote d0."], ids=["d0"], show_progress=False)
    assert [d.page_content for d in b.get_by_ids(["d0"])] == ["B: " + _text(1)]
    a.delete(["d0", "b-only", "legacy-b"])
    assert a.get_by_ids(["d0"]) == []
    assert len(b.get_by_ids(["d0", "b-only", "legacy-b"])) == 3


def test_a_filter_naming_the_other_tenant_finds_nothing(template: Template) -> None:
    _, a, _ = template.fresh()
    other = models.Filter(
        should=[models.FieldCondition(key="metadata.tenant", match=models.MatchValue(value="B"))]
    )
    assert a.invoke("stars", k=20, filter=other) == []
    widened = models.Filter(
        must_not=[models.FieldCondition(key="metadata.tenant", match=models.MatchValue(value="A"))]
    )
    assert a.invoke("stars", k=20, filter=widened) == []
    # the retriever's own filter (not per call) is confined the same way
    _, a_filtered, _ = template.fresh(filter=other)
    assert a_filtered.invoke("stars", k=20) == []


def test_writing_another_tenants_document_is_refused(template: Template) -> None:
    name, a, _ = template.fresh()
    before = _snapshot(template.storage, name)
    with pytest.raises(InvalidDocumentError, match="bound to tenant 'A'"):
        a.add_documents([Document(page_content="x", metadata={"tenant": "B"})], show_progress=False)
    with pytest.raises(InvalidDocumentError, match="bound to tenant 'A'"):
        a.add_texts(["x"], [{"tenant": 7}], show_progress=False)  # the integer 7 is not "A"
    assert _snapshot(template.storage, name) == before
    a.add_texts(["Own tenant named explicitly."], [{"tenant": "A"}], show_progress=False)
    assert len(_snapshot(template.storage, name)) == len(before) + 1


def test_async_reads_and_deletes_are_confined(template: Template) -> None:
    _, a, b = template.fresh()

    async def run() -> None:
        assert {d.metadata["tenant"] for d in await a.aget_by_ids(["d1", "legacy-b"])} == {"A"}
        await a.adelete(["d1", "legacy-b", str(uuid.UUID(int=42))])
        found = await a.ainvoke("stars", k=30)
        assert found and {d.metadata["tenant"] for d in found} == {"A"}

    asyncio.run(run())
    assert len(b.get_by_ids(["d1", "legacy-b", str(uuid.UUID(int=42))])) == 3
    assert a.get_by_ids(["d1"]) == []


def test_vectorstore_and_langchain_index_cleanup_are_confined(template: Template) -> None:
    from langchain_core.indexing import InMemoryRecordManager, index

    name, _, _ = template.fresh()
    docs = [Document(page_content="Same text in both tenants.", metadata={"src": "x"})]
    stores = {}
    for tenant in ("A", "B"):
        store = HybridVectorStore(
            collection_name=name, storage=template.storage, tenant=tenant, **template.encoders
        )
        manager = InMemoryRecordManager(namespace=f"{name}/{tenant}")
        manager.create_schema()
        assert index(docs, manager, store, cleanup="full", key_encoder="sha256")["num_added"] == 1
        stores[tenant] = (store, manager)
    store_a, manager_a = stores["A"]
    assert index([], manager_a, store_a, cleanup="full", key_encoder="sha256")["num_deleted"] == 1
    assert [d.page_content for d in stores["B"][0].similarity_search("same text", k=50)].count(
        "Same text in both tenants."
    ) == 1
    assert store_a.similarity_search("same text", k=50)
    assert all(d.metadata["tenant"] == "A" for d in store_a.similarity_search("text", k=50))
    assert store_a.as_retriever(k=3).tenant == "A"
    store_c = HybridVectorStore.from_texts(
        ["C's only note."],
        collection_name=name,
        storage=template.storage,
        tenant="C",
        show_progress=False,
        **template.encoders,
    )
    assert [d.page_content for d in store_c.similarity_search("note", k=50)] == ["C's only note."]
    with pytest.raises(InvalidParameterError, match="bound to tenant 'A'"):
        store_a.as_retriever(search_kwargs={"tenant": "B"})


def test_an_integer_tenant_is_not_the_string_of_it(template: Template) -> None:
    name, _, _ = template.fresh()
    seven = HybridRetriever(
        collection_name=name, storage=template.storage, tenant=7, **template.encoders
    )
    text_seven = HybridRetriever(
        collection_name=name, storage=template.storage, tenant="7", **template.encoders
    )
    seven.add_texts(["Seven's note about bread."], ids=["d0"], show_progress=False)
    assert [d.page_content for d in seven.invoke("bread", k=20)] == ["Seven's note about bread."]
    assert text_seven.invoke("bread", k=20) == []
    assert seven.count() == 1 and text_seven.count() == 0


def test_the_tenant_key_is_indexed_for_tenants_where_the_engine_can(template: Template) -> None:
    name, a, _ = template.fresh()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # qdrant-client embedded would warn about the index
        a.add_texts(["An indexed write."], show_progress=False)
    storage = template.storage
    if type(storage).__name__ == "EdgeStorage":
        schema = storage._shard(name).info().payload_schema  # type: ignore[attr-defined]
        assert schema["metadata.tenant"].params.is_tenant is True
    else:  # embedded qdrant-client ignores payload indexes: none is made
        assert not storage.client.get_collection(name).payload_schema  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tenant": ""}, "empty"),
        ({"tenant": "  "}, "empty"),
        ({"tenant": True}, "not bool"),
        ({"tenant": 1.5}, "not float"),
        ({"tenant": ["A"]}, "not list"),
        ({"tenant": 2**64}, "64-bit"),
        ({"tenant": "A", "tenant_key": ""}, "non-empty"),
        ({"tenant": "A", "tenant_key": "metadata.tenant"}, "pass 'tenant'"),
        ({"tenant": "A", "tenant_key": "_score"}, "adds to results"),
        ({"tenant_key": "org"}, "without tenant="),
    ],
)
def test_bad_tenants_are_refused(make_retriever: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        make_retriever(**kwargs)
