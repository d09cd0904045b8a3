"""``offset``: pages of the fused ranking, disjoint and concatenating to the unpaged
ranking, with each branch searched deep enough to cover them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hybrid_retriever import HybridRetriever, HybridVectorStore
from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.search_options import MAX_K, resolve_search_options

QUERY = "how do plants make energy from light"


def ids(documents: list[Any]) -> list[str]:
    return [d.id for d in documents]


def test_pages_are_disjoint_and_concatenate_to_the_ranking(
    demo_retriever: HybridRetriever,
) -> None:
    whole = ids(demo_retriever.invoke(QUERY, k=12))
    pages = [ids(demo_retriever.invoke(QUERY, k=4, offset=offset)) for offset in (0, 4, 8)]
    assert [len(page) for page in pages] == [4, 4, 4]
    assert [i for page in pages for i in page] == whole
    assert len(set(whole)) == 12


def test_a_page_keeps_the_documents_scores(demo_retriever: HybridRetriever) -> None:
    whole = demo_retriever.invoke(QUERY, k=6)
    page = demo_retriever.invoke(QUERY, k=3, offset=3)
    assert [d.metadata["_score"] for d in page] == [d.metadata["_score"] for d in whole[3:]]


def test_pages_past_the_end_are_short_then_empty(demo_retriever: HybridRetriever) -> None:
    total = demo_retriever.count()  # 36 documents
    assert len(demo_retriever.invoke(QUERY, k=4, offset=total - 2)) == 2
    assert demo_retriever.invoke(QUERY, k=4, offset=total) == []


def test_async_batch_store_and_retriever_setting_page_alike(
    demo_retriever: HybridRetriever,
) -> None:
    expected = ids(demo_retriever.invoke(QUERY, k=3, offset=5))
    assert ids(asyncio.run(demo_retriever.ainvoke(QUERY, k=3, offset=5))) == expected
    assert [ids(r) for r in demo_retriever.batch([QUERY], k=3, offset=5)] == [expected]
    store = HybridVectorStore(retriever=demo_retriever)
    assert ids(store.similarity_search(QUERY, k=3, offset=5)) == expected
    paged = store.as_retriever(search_kwargs={"k": 3, "offset": 5})
    assert ids(paged.invoke(QUERY)) == expected


def test_each_branch_is_searched_deep_enough_for_the_page(
    demo_retriever: HybridRetriever,
) -> None:
    assert demo_retriever.search_depth(k=4) == 100
    assert demo_retriever.search_depth(k=4, offset=200) == 204
    assert demo_retriever.search_depth(k=4, offset=10, prefetch_k=14) == 14


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"offset": -1}, "offset must be an integer >= 0"),
        ({"offset": 1.5}, "offset must be an integer >= 0"),
        ({"offset": True}, "offset must be an integer >= 0"),
        ({"offset": MAX_K}, "offset \\+ k = 10,004 is too large"),
        ({"offset": 8, "prefetch_k": 10}, "prefetch_k=10 is below 12 \\(offset \\+ k"),
    ],
)
def test_bad_offsets_are_refused(
    demo_retriever: HybridRetriever, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        demo_retriever.invoke(QUERY, k=4, **options)


def test_offset_is_a_per_call_and_constructor_option(make_retriever: Any) -> None:
    options = resolve_search_options(
        k=4,
        prefetch_k=None,
        fusion="rrf",
        rrf_k=60,
        weights=None,
        query_filter=None,
        offset=2,
        overrides={"offset": 6},
    )
    assert (options.offset, options.prefetch_k) == (6, 100)
    with pytest.raises(InvalidParameterError, match="offset must be"):
        make_retriever(offset=-3, engine="qdrant-client")
