"""Small A/B probes behind the ONNX Runtime settings in ``encoders/onnx_model.py``.

Each probe alternates its variants in one process, so that the machine's drift (this
project's VM varied by a third over minutes) hits both alike:

* ``spinning``: int8 documents per second with the document session's threads spinning
  or sleeping between operators (200 SciFact documents per encoder, taking turns 50 at
  a time), then ``add_documents`` of 600 on Qdrant Edge both ways;
* ``batching``: int8 documents one per run (the library's way) or in batches of 32,
  taking turns 50 at a time;
* ``side-by-side``: both encoders' documents one after the other on all cores, or at
  once on one core each, taking turns 50 documents at a time;
* ``contention``: the dense int8 query pass alone, and while the SPLADE query pass
  runs on the other core;
* ``alternating``: both encoders' documents, all of one then all of the other, or a
  document at a time through both (as ``add_documents`` of one document does), with the
  document sessions' threads stopping their spin when a run ends (the library's way) or
  spinning on; the four take turns, 50 documents at a time.

    python benchmarks/onnx_probes.py --data ../shared/data/scifact \
        spinning batching side-by-side contention alternating

Not part of CI.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hybrid_retriever.encoders.onnx_model as onnx_model
from hybrid_retriever import HybridRetriever, SentenceTransformerEncoder, SpladeEncoder
from hybrid_retriever.evaluation import beir_corpus, beir_qrels, beir_queries

ROUNDS = 2

#: Texts per turn of each variant in :func:`take_turns`.
BLOCK = 50


@contextmanager
def sessions(
    *, spinning: bool | None = None, cores: int | None = None, spin_after_run: bool = False
) -> Iterator[None]:
    """New encoders made inside get document sessions that spin (or not) on ``cores``."""
    original_session, original_cores = onnx_model._session, onnx_model._cores

    def session(path: Path, *, threads: int, spinning: bool) -> Any:
        return original_session(
            path,
            threads=threads,
            spinning=spinning if wanted is None else wanted,
            spin_after_run=spin_after_run,
        )

    wanted = spinning
    onnx_model._session = session
    if cores is not None:
        onnx_model._cores = lambda: cores
    try:
        yield
    finally:
        onnx_model._session, onnx_model._cores = original_session, original_cores


def docs_per_second(encode: Callable[[], Any], count: int) -> float:
    start = time.perf_counter()
    encode()
    return count / (time.perf_counter() - start)


def spinning(texts: list[str], documents: list[Any]) -> None:
    variants: dict[str, Callable[[list[str]], Any]] = {}
    for spin in (True, False):
        with sessions(spinning=spin):
            for encoder in (SentenceTransformerEncoder(), SpladeEncoder()):
                encoder.encode_documents(texts[:16])
                variants[f"spinning={spin} {type(encoder).__name__}"] = encoder.encode_documents
    take_turns(variants, texts)
    for _ in range(ROUNDS):
        for spin in (True, False):
            with sessions(spinning=spin), tempfile.TemporaryDirectory() as folder:
                retriever = HybridRetriever(collection_name="probe", path=folder)
                retriever.dense_encoder.encode_documents(["warm"])
                retriever.sparse_encoder.encode_documents(["warm"])
                add = functools.partial(retriever.add_documents, documents, show_progress=False)
                rate = docs_per_second(add, len(documents))
                retriever.close()
                print(f"spinning={spin} add_documents: {rate:.1f} docs/s")


def batching(texts: list[str]) -> None:
    for encoder in (SentenceTransformerEncoder(), SpladeEncoder()):
        model = encoder._onnx_model()
        if model is None or not model.spec.get("int8"):
            raise SystemExit("the default encoders are not ONNX int8 here")
        model.encode_documents(texts[:16], batch_size=1)

        def encode(block: list[str], *, int8: bool, model: Any = model) -> None:
            model.spec["int8"] = int8  # False: the batched path, as fp32 runs
            try:
                model.encode_documents(block, batch_size=32)
            finally:
                model.spec["int8"] = True

        name = type(encoder).__name__
        take_turns(
            {
                f"{name} one per run": functools.partial(encode, int8=True),
                f"{name} batches of 32": functools.partial(encode, int8=False),
            },
            texts,
        )


def _both(dense: Any, sparse: Any, texts: list[str], *, at_once: bool) -> None:
    if not at_once:
        dense.encode_documents(texts)
        sparse.encode_documents(texts)
        return
    worker = threading.Thread(target=sparse.encode_documents, args=(texts,))
    worker.start()
    dense.encode_documents(texts)
    worker.join()


def side_by_side(texts: list[str]) -> None:
    variants = {}
    for at_once in (False, True):
        with sessions(cores=1 if at_once else None):
            dense, sparse = SentenceTransformerEncoder(), SpladeEncoder()
            _both(dense, sparse, texts[:8], at_once=False)  # warm up
        label = "at once, one core each" if at_once else "one after the other"
        variants[label] = functools.partial(_both, dense, sparse, at_once=at_once)
    take_turns(variants, texts)


def take_turns(variants: dict[str, Callable[[list[str]], Any]], texts: list[str]) -> None:
    """Per round, the variants take turns a :data:`BLOCK` of texts at a time, so that the
    machine's drift hits all of them alike; then each one's docs/s over all blocks."""
    for _ in range(ROUNDS):
        seconds = dict.fromkeys(variants, 0.0)
        for start in range(0, len(texts), BLOCK):
            block = texts[start : start + BLOCK]
            for label, encode in variants.items():
                began = time.perf_counter()
                encode(block)
                seconds[label] += time.perf_counter() - began
        for label, total in seconds.items():
            print(f"{label}: {len(texts) / total:.1f} docs/s", flush=True)


def _busy(sparse: Any, queries: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        for query in queries[:20]:
            sparse.encode_query(query)


def contention(queries: list[str]) -> None:
    dense, sparse = SentenceTransformerEncoder()._onnx_model(), SpladeEncoder()._onnx_model()
    if dense is None or sparse is None:
        raise SystemExit("the default encoders are not ONNX here")

    def median_ms() -> float:
        times = []
        for query in queries:
            start = time.perf_counter()
            dense.encode_query(query)
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)

    for _ in range(ROUNDS):
        print(f"dense query pass alone: {median_ms():.2f} ms")
        stop = threading.Event()
        worker = threading.Thread(target=_busy, args=(sparse, queries, stop))
        worker.start()
        print(f"dense query pass, SPLADE busy beside it: {median_ms():.2f} ms")
        stop.set()
        worker.join()


def _one_at_a_time(dense: Any, sparse: Any, texts: list[str]) -> None:
    """Each document through both encoders before the next, as ``add_documents([doc])``."""
    for text in texts:
        _both(dense, sparse, [text], at_once=False)


def alternating(texts: list[str]) -> None:
    variants = {}
    for spin_after_run in (False, True):
        with sessions(spin_after_run=spin_after_run):
            dense, sparse = SentenceTransformerEncoder(), SpladeEncoder()
            _both(dense, sparse, texts[:8], at_once=False)  # warm up
        threads = f"threads {'spinning on' if spin_after_run else 'stop spinning'} after a run"
        variants[f"{threads}, all of each encoder"] = functools.partial(
            _both, dense, sparse, at_once=False
        )
        variants[f"{threads}, a document at a time"] = functools.partial(
            _one_at_a_time, dense, sparse
        )
    take_turns(variants, texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument(
        "probes",
        nargs="+",
        choices=["spinning", "batching", "side-by-side", "contention", "alternating"],
    )
    args = parser.parse_args()
    documents = list(beir_corpus(args.data))
    texts = [d.page_content for d in documents[:200]]
    judged = beir_qrels(args.data, "test")
    queries = [text for qid, text in beir_queries(args.data).items() if qid in judged][:200]
    for probe in args.probes:
        print(f"== {probe}", flush=True)
        if probe == "spinning":
            spinning(texts, documents[:600])
        elif probe == "batching":
            batching(texts)
        elif probe == "side-by-side":
            side_by_side(texts)
        elif probe == "alternating":
            alternating(texts)
        else:
            contention(queries)


if __name__ == "__main__":
    main()
