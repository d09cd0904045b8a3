"""One hit per source (``group_by``): the pure grouping, and chunked documents on both
engines with the real models: ``k`` counts sources, a source ranks where its best chunk
does, and a ranking with too few sources is searched deeper."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.documents import Document

from hybrid_retriever import HybridRetriever
from hybrid_retriever.chunking import SOURCE_ID_KEY, Chunker
from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.grouping import (
    DEFAULT_GROUP_BY,
    check_group_by,
    first_per_group,
    group_value,
)


def test_first_per_group_keeps_the_best_of_each_in_order() -> None:
    hits = ["a1", "a2", "b1", "a3", "c1", "b2", "d1"]
    assert first_per_group(hits, lambda h: h[0], 3) == ["a1", "b1", "c1"]
    assert first_per_group(hits, lambda h: h[0], 10) == ["a1", "b1", "c1", "d1"]
    assert first_per_group(hits, lambda h: h, 2) == ["a1", "a2"]
    assert first_per_group([], lambda h: h, 2) == []


def test_group_value_reads_the_path_and_a_point_without_it_is_its_own_group() -> None:
    chunk = {"metadata": {"source_id": "doc-1", "chunk": 2}}
    assert group_value("p1", chunk, DEFAULT_GROUP_BY) == group_value("p2", chunk, DEFAULT_GROUP_BY)
    assert group_value("p1", {"metadata": {}}, DEFAULT_GROUP_BY) == ("point", "p1")
    assert group_value("p1", {}, DEFAULT_GROUP_BY) != group_value("p2", {}, DEFAULT_GROUP_BY)
    assert group_value("p1", {"metadata": {"source_id": None}}, DEFAULT_GROUP_BY) == ("point", "p1")
    # Unhashable values group by their JSON: the same list is the same group.
    tags = {"metadata": {"tags": ["a", "b"]}}
    assert group_value("p1", tags, "metadata.tags") == group_value("p2", tags, "metadata.tags")
    assert group_value("p1", {"metadata": {"a": {"b": 3}}}, "metadata.a.b") == ("value", "3")


def test_check_group_by() -> None:
    assert check_group_by(True) == DEFAULT_GROUP_BY == f"metadata.{SOURCE_ID_KEY}"
    assert check_group_by(None) is None
    assert check_group_by(False) is None
    assert check_group_by("metadata.author") == "metadata.author"
    for bad in ("author", "metadata.", "page_content", 3, ["metadata.author"]):
        with pytest.raises(InvalidParameterError, match="group_by"):
            check_group_by(bad)


# -- on the engines, with the real models ---------------------------------------------------

BREAD = [
    "Yeast makes bread dough rise by producing carbon dioxide.",
    "Bread dough rises when yeast ferments the sugars in the flour.",
    "Knead the bread dough so that gluten traps the gas the yeast makes.",
]
QUERY = "how does yeast make bread rise"


def chunks(source: str, texts: list[str], topic: str) -> list[Document]:
    """Documents as chunking writes them (see ``chunking.Chunker.split``)."""
    return [
        Document(
            id=f"{source}#{n}",
            page_content=text,
            metadata={"source_id": source, "chunk": n, "topic": topic},
        )
        for n, text in enumerate(texts)
    ]


@pytest.fixture()
def retriever(make_retriever: Any, engine: str) -> HybridRetriever:
    built: HybridRetriever = make_retriever(engine=engine)
    built.add_documents(
        [
            *chunks("bread", BREAD, "food"),
            *chunks("stars", ["Stars fuse hydrogen into helium in their cores."], "space"),
            Document(
                id="pasta",
                page_content="Fresh pasta is made of flour and eggs.",
                metadata={"topic": "food"},
            ),
            Document(
                id="oven",
                page_content="A hot oven bakes the loaf and sets its crust.",
                metadata={"topic": "food"},
            ),
            Document(
                id="comet",
                page_content="A comet's tail points away from the Sun.",
                metadata={"topic": "space"},
            ),
        ],
        show_progress=False,
    )
    return built


def source(document: Document) -> str:
    return str(document.metadata.get("source_id", document.id))


def test_k_counts_sources_each_its_best_chunk_in_fused_order(retriever: HybridRetriever) -> None:
    every_chunk = retriever.invoke(QUERY, k=7, group_by=None)
    assert [source(d) for d in every_chunk[:3]] == ["bread"] * 3  # the case grouping is for
    best_of_each: dict[str, str | None] = {}  # source -> its first (best) chunk, in order
    for document in every_chunk:
        best_of_each.setdefault(source(document), document.id)
    grouped = retriever.invoke(QUERY, k=4)  # grouping is the default
    assert [d.id for d in grouped] == list(best_of_each.values())[:4]
    assert len({source(d) for d in grouped}) == 4
    assert grouped[0].id == every_chunk[0].id
    assert grouped[0].metadata["_score"] == every_chunk[0].metadata["_score"]


def test_too_few_sources_in_the_candidates_searches_deeper(retriever: HybridRetriever) -> None:
    # Three candidates per branch are all chunks of "bread" (checked), yet k=3 sources come.
    shallow = retriever.invoke(QUERY, k=3, prefetch_k=3, group_by=None)
    assert {source(d) for d in shallow} == {"bread"}
    grouped = retriever.invoke(QUERY, k=3, prefetch_k=3)
    assert len({source(d) for d in grouped}) == 3
    # Never more sources than exist: the whole collection holds 5.
    assert len(retriever.invoke(QUERY, k=9, prefetch_k=9)) == 5


def test_offset_counts_sources(retriever: HybridRetriever) -> None:
    whole = [d.id for d in retriever.invoke(QUERY, k=5)]
    pages = [retriever.invoke(QUERY, k=2, offset=offset) for offset in (0, 2, 4)]
    assert [d.id for page in pages for d in page] == whole


def test_group_by_another_metadata_key(retriever: HybridRetriever) -> None:
    found = retriever.invoke(QUERY, k=3, group_by="metadata.topic")
    assert [d.metadata["topic"] for d in found] == ["food", "space"]  # two topics exist


def test_async_batch_and_retriever_option_agree(retriever: HybridRetriever) -> None:
    expected = [d.id for d in retriever.invoke(QUERY, k=3, prefetch_k=3)]
    assert [d.id for d in asyncio.run(retriever.ainvoke(QUERY, k=3, prefetch_k=3))] == expected
    assert [[d.id for d in r] for r in retriever.batch([QUERY, QUERY], k=3, prefetch_k=3)] == [
        expected,
        expected,
    ]
    ungrouped = retriever.model_copy(update={"group_by": None})
    assert {source(d) for d in ungrouped.invoke(QUERY, k=3, prefetch_k=3)} == {"bread"}


def test_the_chunker_writes_the_default_key(dense_encoder: Any, sparse_encoder: Any) -> None:
    chunker = Chunker.for_encoders(dense_encoder, sparse_encoder)
    assert chunker is not None
    long = Document(id="book", page_content=" ".join(["Bread rises in a warm kitchen."] * 200))
    pieces = chunker.split(long)
    assert len(pieces) > 1
    assert {group_value(str(p.id), {"metadata": p.metadata}, DEFAULT_GROUP_BY) for p in pieces} == {
        ("value", '"book"')
    }
