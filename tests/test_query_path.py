"""The query path's speed features keep results unchanged: query cache, batches, threads."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import torch
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document

from hybrid_retriever import (
    HybridRetriever,
    InvalidParameterError,
    InvalidQueryError,
    SentenceTransformerEncoder,
    SparseVector,
    SpladeEncoder,
)
from hybrid_retriever.encoders.base import DenseEncoder, LazyModel, SparseEncoder
from hybrid_retriever.encoders.precision import Precision
from hybrid_retriever.encoders.threads import QUERY_TORCH_THREADS, encode_side_by_side
from hybrid_retriever.query_cache import QueryVectorCache

QUERIES = [
    "How does SPLADE expand a query?",
    "Which database stores vectors?",
    "photosynthesis in plants",
    "How does SPLADE expand a query?",  # repeated on purpose
]


class CountingDense(DenseEncoder):
    """The real dense encoder, counting calls and the threads they run on.

    ``batches`` lists the texts of each call; the retriever encodes every text alone,
    so each call has one."""

    def __init__(self, inner: SentenceTransformerEncoder) -> None:
        self.inner = inner
        self.batches: list[list[str]] = []
        self.threads: list[str] = []
        self.torch_threads: list[int] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def encode_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self.inner.encode_documents(texts)

    def encode_query(self, text: str) -> list[float]:
        self.batches.append([text])
        self.threads.append(threading.current_thread().name)
        self.torch_threads.append(torch.get_num_threads())
        return self.inner.encode_query(text)


class CountingSparse(SparseEncoder):
    def __init__(self, inner: SpladeEncoder) -> None:
        self.inner = inner
        self.batches: list[list[str]] = []
        self.threads: list[str] = []
        self.torch_threads: list[int] = []

    @property
    def name(self) -> str:
        return self.inner.name

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        return self.inner.encode_documents(texts)

    def encode_query(self, text: str) -> SparseVector:
        self.batches.append([text])
        self.threads.append(threading.current_thread().name)
        self.torch_threads.append(torch.get_num_threads())
        return self.inner.encode_query(text)


@pytest.fixture()
def counted(
    make_retriever: Any,
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
    documents: list[Document],
    engine: str,
) -> tuple[HybridRetriever, CountingDense, CountingSparse]:
    dense, sparse = CountingDense(dense_encoder), CountingSparse(sparse_encoder)
    retriever = make_retriever(engine=engine, dense_encoder=dense, sparse_encoder=sparse, k=3)
    index_and_settle(retriever, documents)
    for counter in (dense, sparse):  # count the test's own queries only
        counter.batches.clear()
        counter.threads.clear()
        counter.torch_threads.clear()
    return retriever, dense, sparse


def index_and_settle(retriever: HybridRetriever, documents: list[Document]) -> None:
    """Index, then search once. qdrant-client's embedded mode scores the first search
    after a write differently from later ones (the lowest cosines move by ~1e-8; its
    vectors settle into their search layout on that first search), and min-max fusion
    sees the lowest score. The comparisons below are between our own paths, which must
    be exact, so they start from a settled collection."""
    retriever.add_documents(documents, show_progress=False)
    retriever.invoke("settle")
    retriever.invoke("settle again")  # with some vectors one search did not settle it


def ids(documents: list[Document]) -> list[str | None]:
    return [d.id for d in documents]


def explained(documents: list[Document]) -> list[tuple[Any, ...]]:
    """Everything a result says: ids, fused scores, branch ranks and scores; compared with
    ``==`` where the product promises the same answer (query vectors are computed the same
    way on every path, see ``encoders/threads.py``)."""
    return [
        (d.id, d.metadata["_score"], d.metadata["_ranks"], d.metadata["_scores"]) for d in documents
    ]


# -- the cache itself ------------------------------------------------------------------------------


def test_cache_evicts_least_recently_used() -> None:
    cache = QueryVectorCache(2)
    cache.put("dense", "a", [1.0])
    cache.put("dense", "b", [2.0])
    assert cache.get("dense", "a") == [1.0]  # "a" is now the most recent
    cache.put("dense", "c", [3.0])
    assert cache.get("dense", "b") is None
    assert cache.get("dense", "a") == [1.0]
    assert cache.get("dense", "c") == [3.0]
    assert cache.get("sparse", "a") is None  # branches never share entries
    assert (cache.hits, cache.misses) == (3, 2)


def test_cache_of_size_zero_keeps_nothing() -> None:
    cache = QueryVectorCache(0)
    cache.put("dense", "a", [1.0])
    assert len(cache) == 0
    assert cache.get("dense", "a") is None


@pytest.mark.parametrize("size", [-1, 1.5, "10", True])
def test_bad_cache_size_is_refused(make_retriever: Any, size: object) -> None:
    with pytest.raises(InvalidParameterError, match="query_cache_size"):
        make_retriever(query_cache_size=size)


# -- the retriever with the cache ------------------------------------------------------------------


def test_repeated_query_is_encoded_once(
    counted: tuple[HybridRetriever, CountingDense, CountingSparse],
) -> None:
    retriever, dense, sparse = counted
    first = retriever.invoke(QUERIES[0])
    again = retriever.invoke(QUERIES[0])
    assert explained(first) == explained(again)  # exact: the same vectors, the same search
    assert dense.batches == [[QUERIES[0]]]
    assert sparse.batches == [[QUERIES[0]]]


def test_cache_off_encodes_every_time(
    make_retriever: Any,
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
    documents: list[Document],
) -> None:
    dense, sparse = CountingDense(dense_encoder), CountingSparse(sparse_encoder)
    retriever = make_retriever(dense_encoder=dense, sparse_encoder=sparse, query_cache_size=0)
    retriever.add_documents(documents[:5], show_progress=False)
    for counter in (dense, sparse):  # count the test's own queries only (not model probes)
        counter.batches.clear()
    retriever.invoke(QUERIES[0])
    retriever.invoke(QUERIES[0])
    assert len(dense.batches) == 2
    assert len(sparse.batches) == 2


def test_single_branch_encodes_only_that_branch(
    counted: tuple[HybridRetriever, CountingDense, CountingSparse],
) -> None:
    retriever, dense, sparse = counted
    retriever.invoke(QUERIES[1], weights={"dense": 1.0, "sparse": 0.0})
    assert dense.batches == [[QUERIES[1]]]
    assert sparse.batches == []


def test_sparse_encodes_in_a_worker_while_dense_runs_in_the_caller(
    counted: tuple[HybridRetriever, CountingDense, CountingSparse],
) -> None:
    retriever, dense, sparse = counted
    retriever.invoke(QUERIES[2])
    assert dense.threads == [threading.current_thread().name]
    assert sparse.threads[0].startswith("hybrid-retriever-encode")


@pytest.mark.parametrize(("budget", "dense_share", "sparse_share"), [(4, 2, 2), (3, 2, 1)])
def test_the_encoders_split_the_callers_torch_threads(
    counted: tuple[HybridRetriever, CountingDense, CountingSparse],
    budget: int,
    dense_share: int,
    sparse_share: int,
) -> None:
    # Both at once on all threads each oversubscribes the cores (encoders/threads.py).
    retriever, dense, sparse = counted
    before = torch.get_num_threads()
    torch.set_num_threads(budget)
    try:
        docs = retriever.invoke(QUERIES[2], k=2)
        assert torch.get_num_threads() == budget  # restored for the caller
    finally:
        torch.set_num_threads(before)
    assert (dense.torch_threads, sparse.torch_threads) == ([dense_share], [sparse_share])
    assert sparse.threads[0].startswith("hybrid-retriever-encode")
    assert len(docs) == 2


def test_with_one_torch_thread_the_encoders_take_turns_in_the_caller(
    counted: tuple[HybridRetriever, CountingDense, CountingSparse],
) -> None:
    retriever, dense, sparse = counted
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        retriever.invoke(QUERIES[2])
    finally:
        torch.set_num_threads(before)
    caller = threading.current_thread().name
    assert (dense.threads, sparse.threads) == ([caller], [caller])
    assert (dense.torch_threads, sparse.torch_threads) == ([1], [1])


def test_side_by_side_without_torch_runs_at_once_and_waits_on_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Encoders that do not use torch: nothing to split, both jobs simply run at once.
    monkeypatch.delitem(sys.modules, "torch")
    both_started = threading.Barrier(2, timeout=5)

    def job(value: str) -> str:
        both_started.wait()
        return value

    with ThreadPoolExecutor(1) as pool:
        assert encode_side_by_side(lambda: job("a"), lambda: job("b"), pool=pool) == ("a", "b")
        finished = threading.Event()

        def failing() -> None:
            raise ValueError("dense failed")

        def slow() -> None:
            time.sleep(0.2)
            finished.set()

        with pytest.raises(ValueError, match="dense failed"):
            encode_side_by_side(failing, slow, pool=pool)
        assert finished.is_set()  # the worker's job ended before the error reached us


# -- batches ---------------------------------------------------------------------------------------


def test_batch_equals_invoke_with_each_text_encoded_alone_and_one_search(
    counted: tuple[HybridRetriever, CountingDense, CountingSparse],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    retriever, dense, sparse = counted
    searches: list[int] = []
    search = retriever.storage.search

    def counting_search(*args: Any, **kwargs: Any) -> Any:
        searches.append(len(args[1]))
        return search(*args, **kwargs)

    monkeypatch.setattr(retriever.storage, "search", counting_search)
    batched = retriever.batch(QUERIES)
    alone = [[q] for q in dict.fromkeys(QUERIES)]  # the repeat is encoded once
    assert (dense.batches, sparse.batches) == (alone, alone)
    # Every branch of every query (dense, SPLADE and BM25: a new collection's default),
    # one request.
    assert searches == [3 * len(QUERIES)]

    retriever._query_cache.clear()
    single = [retriever.invoke(q) for q in QUERIES]
    assert [explained(docs) for docs in batched] == [explained(docs) for docs in single]


def test_batch_equals_invoke_in_bf16(
    make_retriever: Any,
    dense_encoder: SentenceTransformerEncoder,
    documents: list[Document],
    engine: str,
) -> None:
    """bf16 picks its kernels by shape: a batch of 4 and a batch of 1 differ in the 4th digit
    on an AVX512-BF16 CPU. Each query alone keeps batch and invoke identical anyway."""
    bf16 = SentenceTransformerEncoder(precision=Precision.BF16)
    bf16._model = dense_encoder._model
    retriever = make_retriever(engine=engine, dense_encoder=bf16, query_cache_size=0, k=5)
    index_and_settle(retriever, documents)
    batched = retriever.batch(QUERIES)
    assert [explained(docs) for docs in batched] == [
        explained(retriever.invoke(q)) for q in QUERIES
    ]


def test_a_cached_vector_equals_a_fresh_one(
    counted: tuple[HybridRetriever, CountingDense, CountingSparse],
) -> None:
    retriever, dense, sparse = counted
    retriever.batch(QUERIES[:3])
    cached = {
        branch: [retriever._query_cache.get(branch, q) for q in QUERIES[:3]]
        for branch in ("dense", "sparse")
    }
    assert cached["dense"] == [dense.inner.encode_query(q) for q in QUERIES[:3]]
    assert cached["sparse"] == [sparse.inner.encode_query(q) for q in QUERIES[:3]]
    hit = retriever.invoke(QUERIES[1])
    retriever._query_cache.clear()
    assert explained(retriever.invoke(QUERIES[1])) == explained(hit)


@pytest.mark.parametrize("caller_threads", [1, 2, 3])
def test_query_vectors_do_not_depend_on_the_callers_threads(
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
    caller_threads: int,
) -> None:
    """oneDNN and MKL may split a product differently on another thread count, which can
    change the last bits; the query's forward pass always runs on QUERY_TORCH_THREADS.
    (Under ONNX Runtime the query session has one thread of its own, whatever torch's.)"""
    shared = {"dense": dense_encoder.model, "sparse": sparse_encoder.model}
    dense_encoder = SentenceTransformerEncoder(backend="torch")
    dense_encoder._model = LazyModel(lambda: shared["dense"])
    sparse_encoder = SpladeEncoder(backend="torch")
    sparse_encoder._model = LazyModel(lambda: shared["sparse"])
    inside: list[int] = []

    def record(*_: Any) -> None:
        inside.append(torch.get_num_threads())

    query = QUERIES[1]
    reference = (dense_encoder.encode_query(query), sparse_encoder.encode_query(query))
    hooks = [
        dense_encoder.model[0].register_forward_hook(record),
        sparse_encoder.model[0].register_forward_hook(record),
    ]
    before = torch.get_num_threads()
    torch.set_num_threads(caller_threads)
    try:
        got = (dense_encoder.encode_query(query), sparse_encoder.encode_query(query))
        assert torch.get_num_threads() == caller_threads  # restored for the caller
    finally:
        torch.set_num_threads(before)
        for hook in hooks:
            hook.remove()
    assert inside == [QUERY_TORCH_THREADS, QUERY_TORCH_THREADS]
    assert got == reference


async def test_abatch_equals_ainvoke_and_invoke(
    counted: tuple[HybridRetriever, CountingDense, CountingSparse],
) -> None:
    retriever, dense, _ = counted
    batched = await retriever.abatch(QUERIES, k=2)
    assert dense.batches == [[q] for q in dict.fromkeys(QUERIES)]
    retriever._query_cache.clear()
    single = [await retriever.ainvoke(q, k=2) for q in QUERIES]
    retriever._query_cache.clear()
    synchronous = [retriever.invoke(q, k=2) for q in QUERIES]
    assert [explained(docs) for docs in batched] == [explained(docs) for docs in single]
    assert [explained(docs) for docs in single] == [explained(docs) for docs in synchronous]
    assert all(len(docs) == 2 for docs in batched)


def test_batch_reports_a_bad_query_in_its_own_slot(
    counted: tuple[HybridRetriever, CountingDense, CountingSparse],
) -> None:
    retriever, _, _ = counted
    results = retriever.batch([QUERIES[0], "   ", QUERIES[1]], return_exceptions=True)
    assert isinstance(results[1], InvalidQueryError)
    assert ids(results[0]) == ids(retriever.invoke(QUERIES[0]))
    assert ids(results[2]) == ids(retriever.invoke(QUERIES[1]))
    with pytest.raises(InvalidQueryError, match="empty"):
        retriever.batch([QUERIES[0], "   "])


def test_batch_with_bad_options_fails_every_query(
    counted: tuple[HybridRetriever, CountingDense, CountingSparse],
) -> None:
    retriever, _, _ = counted
    results = retriever.batch(QUERIES[:2], return_exceptions=True, k=0)
    assert all(isinstance(r, InvalidParameterError) for r in results)


class RunRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[int] = []
        self.errors: list[str] = []

    def on_retriever_start(self, serialized: Any, query: str, **kwargs: Any) -> None:
        self.started.append(query)

    def on_retriever_end(self, documents: Sequence[Document], **kwargs: Any) -> None:
        self.ended.append(len(documents))

    def on_retriever_error(self, error: BaseException, **kwargs: Any) -> None:
        self.errors.append(type(error).__name__)


def test_batch_opens_one_callback_run_per_query(
    counted: tuple[HybridRetriever, CountingDense, CountingSparse],
) -> None:
    retriever, _, _ = counted
    recorder = RunRecorder()
    retriever.batch(
        [QUERIES[0], "", QUERIES[1]], {"callbacks": [recorder]}, return_exceptions=True, k=2
    )
    assert recorder.started == [QUERIES[0], "", QUERIES[1]]
    assert recorder.ended == [2, 2]
    assert recorder.errors == ["InvalidQueryError"]


def test_empty_batch_returns_empty(
    counted: tuple[HybridRetriever, CountingDense, CountingSparse],
) -> None:
    assert counted[0].batch([]) == []


# -- the event loop --------------------------------------------------------------------------------


async def test_ainvoke_leaves_the_event_loop_free(
    make_retriever: Any,
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
    documents: list[Document],
) -> None:
    """While queries encode and search, the event loop stays free.

    Two checks. Every slow step of the query path (each encoder, every engine call,
    including the first search's collection check) runs off the loop's thread: exact,
    whatever the machine's load. And the loop keeps ticking: its longest stall stays a
    small part of the run. A query path that encodes on the loop stalls it for a whole
    gathered batch (16 queries' encoding), half of the run here.
    """
    dense, sparse = CountingDense(dense_encoder), CountingSparse(sparse_encoder)
    retriever = make_retriever(
        engine="edge", query_cache_size=0, dense_encoder=dense, sparse_encoder=sparse
    )
    await retriever.aadd_documents(documents, show_progress=False)
    await retriever.ainvoke("warm-up")
    loop_thread = threading.current_thread().name
    engine_calls_on_loop: list[str] = []
    storage = retriever.storage

    def spy(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def called(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread().name == loop_thread:
                engine_calls_on_loop.append(name)
            return method(*args, **kwargs)

        return called

    for name in ("get_layout", "search", "retrieve", "count"):
        setattr(storage, name, spy(name, getattr(storage, name)))
    retriever._verified = False  # the first search checks the collection again
    for counter in (dense, sparse):
        counter.threads.clear()
    queries = [f"{q} {i}" for i in range(8) for q in QUERIES]  # 32 distinct texts
    stop = asyncio.Event()
    stalls: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            stalls.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    for offset in (0, 16):
        await asyncio.gather(*(retriever.ainvoke(q) for q in queries[offset : offset + 16]))
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    assert len(dense.threads) == len(sparse.threads) == len(queries)
    assert loop_thread not in dense.threads + sparse.threads
    assert engine_calls_on_loop == []
    assert max(stalls) < elapsed / 4, (max(stalls), elapsed, len(stalls))
