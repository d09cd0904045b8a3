"""Where one ``invoke`` spends its time, step by step, per encoder backend.

Indexes a BEIR corpus once (``--index``: kept there and reused by later runs; the
ingestion rate of the first backend is recorded), then per backend, over the test
queries, one at a time, with the query cache off, times:
tokenisation, each encoder's session run / forward pass, each encoder's whole
``encode_query``, both one after the other and side by side (the thread hand-off),
the Qdrant search of both branches, fusion, the payload fetch and the Documents,
and ``invoke`` end to end (p50 and p95). Medians in ms. ``--rounds``: the whole
profile again, ``--pause`` seconds apart, since this VM's speed drifts over minutes.
Not part of CI.

    python benchmarks/query_profile.py --data ../shared/data/scifact \
        --index /tmp/scifact-index --backends onnx,torch \
        --out benchmarks/results/query_profile.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hybrid_retriever import HybridRetriever, SentenceTransformerEncoder, SpladeEncoder
from hybrid_retriever.encoders.threads import encode_side_by_side
from hybrid_retriever.evaluation import beir_corpus, beir_qrels, beir_queries
from hybrid_retriever.machine import machine_info


def timings(call: Callable[[str], Any], queries: list[str]) -> list[float]:
    times = []
    for query in queries:
        start = time.perf_counter()
        call(query)
        times.append((time.perf_counter() - start) * 1000)
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
    }


def profile(backend: str, data: Path, queries: list[str], k: int, index: Path) -> dict[str, Any]:
    dense = SentenceTransformerEncoder(backend=backend)
    sparse = SpladeEncoder(backend=backend)
    dense.encode_query("warm-up")  # load (and export, the first time) before timing
    sparse.encode_query("warm-up")
    fresh = not index.exists()
    retriever = HybridRetriever(
        collection_name="profile",
        path=index,
        dense_encoder=dense,
        sparse_encoder=sparse,
        k=k,
        query_cache_size=0,
    )
    ingest: dict[str, Any] = {}
    if fresh:
        documents = list(beir_corpus(data))
        start = time.perf_counter()
        retriever.add_documents(documents, show_progress=False)
        ingest["ingest_docs_per_s"] = round(len(documents) / (time.perf_counter() - start), 1)
        ingest["ingest_load_average_after"] = os.getloadavg()
    for query in queries[:5]:
        retriever.invoke(query)
    steps: dict[str, list[float]] = {}
    if backend.startswith("onnx"):
        onnx_dense, onnx_sparse = dense._onnx_model(), sparse._onnx_model()
        if onnx_dense is None or onnx_sparse is None:
            raise SystemExit(f"backend {backend!r} fell back to PyTorch")
        for name, model in (("dense", onnx_dense), ("sparse", onnx_sparse)):
            steps[f"{name}: tokenise"] = timings(model.tokenizer.encode, queries)
            steps[f"{name}: session run (with tokenise)"] = timings(model.encode_query, queries)
    steps["dense: encode_query"] = timings(dense.encode_query, queries)
    steps["sparse: encode_query"] = timings(sparse.encode_query, queries)
    steps["both, one after the other"] = timings(
        lambda q: (dense.encode_query(q), sparse.encode_query(q)), queries
    )
    pool = ThreadPoolExecutor(1)
    steps["both, side by side (thread hand-off)"] = timings(
        lambda q: encode_side_by_side(
            functools.partial(dense.encode_query, q),
            functools.partial(sparse.encode_query, q),
            pool=pool,
        ),
        queries,
    )
    options = retriever._options({})
    vectors = {q: retriever._encode_queries([q], options) for q in queries}
    requests = {q: retriever._branch_queries(vectors[q], 1, options) for q in queries}
    flat = {q: [b for per_text in requests[q] for b in per_text.values()] for q in queries}
    storage = retriever.storage
    steps["search (both branches, one request)"] = timings(
        lambda q: storage.search("profile", flat[q], options.filter), queries
    )
    results = {q: storage.search("profile", flat[q], options.filter) for q in queries}

    def fuse(q: str) -> Any:
        flat_results = iter(results[q])
        per_branch = {branch: next(flat_results) for branch in requests[q][0]}
        return retriever._fuse(q, per_branch, options)

    steps["fuse"] = timings(fuse, queries)
    fused = {q: fuse(q) for q in queries}
    steps["payloads + Documents"] = timings(
        lambda q: _documents(retriever, fused[q]),
        queries,
    )
    steps["the query path without LangChain's callbacks"] = timings(
        lambda q: retriever._search([q], options), queries
    )
    steps["invoke, end to end"] = timings(retriever.invoke, queries)
    retriever.close()
    return {
        "backend": dense.backend.value,
        "k": k,
        "queries": len(queries),
        **ingest,
        "load_average_after": os.getloadavg(),
        "steps_ms": {name: summary(times) for name, times in steps.items()},
    }


def _documents(retriever: HybridRetriever, hits: Any) -> Any:
    from hybrid_retriever import retriever as module

    points = retriever.storage.retrieve("profile", [hit.id for hit in hits])
    return module._documents(hits, {p.id: p.payload for p in points})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--backends", default="onnx,torch")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--index", type=Path, help="index folder, kept (default: a temporary one)")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--rounds", type=int, default=1, help="profile the backends this many times over"
    )
    parser.add_argument(
        "--pause", type=float, default=0.0, help="seconds between rounds (the VM drifts)"
    )
    args = parser.parse_args()
    qrels = beir_qrels(args.data, "test")
    queries = [text for qid, text in beir_queries(args.data).items() if qid in qrels]
    report: dict[str, Any] = {"runs": []}
    with tempfile.TemporaryDirectory(prefix="query-profile-") as scratch:
        index = args.index if args.index is not None else Path(scratch) / "index"
        for round_number in range(1, args.rounds + 1):
            if round_number > 1:
                time.sleep(args.pause)
            for backend in args.backends.split(","):
                run = profile(backend.strip(), args.data, queries, args.k, index)
                run["round"] = round_number
                run["finished"] = time.strftime("%H:%M:%S")
                print(json.dumps(run, indent=2), flush=True)
                report["runs"].append(run)
    report.update(
        dataset=args.data.resolve().name,
        load_average=os.getloadavg(),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        command=" ".join(["python", "benchmarks/query_profile.py", *sys.argv[1:]]),
        machine=machine_info(),
    )
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
