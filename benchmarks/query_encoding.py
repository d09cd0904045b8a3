"""Query encoding latency: each encoder alone, one after the other, and both at once.

``HybridRetriever`` encodes a query with SPLADE in a worker thread while the dense
model runs in the caller, each on half of the caller's torch threads
(``encoders/threads.py``); this measures what that buys on this machine, and what
running both at once on all threads each would cost. Median over SciFact queries,
models loaded and warmed up first. PyTorch backend unless ``--backend`` says otherwise
(``benchmarks/query_profile.py`` profiles the default, ONNX). Not part of CI.

    python benchmarks/query_encoding.py --data ../shared/data/scifact --runs 3 \
        --out benchmarks/results/query_encoding.json [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hybrid_retriever import SentenceTransformerEncoder, SpladeEncoder
from hybrid_retriever.encoders.threads import encode_side_by_side, torch_threads
from hybrid_retriever.evaluation import beir_queries
from hybrid_retriever.machine import machine_info


def median_ms(call: Callable[[str], Any], queries: list[str]) -> float:
    times = []
    for query in queries:
        start = time.perf_counter()
        call(query)
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--runs", type=int, default=1, help="repeat every path, interleaved")
    parser.add_argument("--backend", default="torch", help="encoder backend (default: torch)")
    parser.add_argument("--out", type=Path, help="also write the report here (JSON)")
    args = parser.parse_args()
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    queries = list(beir_queries(args.data).values())[: args.queries]
    dense = SentenceTransformerEncoder(backend=args.backend)
    sparse = SpladeEncoder(backend=args.backend)
    dense.encode_query("warm-up")
    sparse.encode_query("warm-up")
    pool = ThreadPoolExecutor(1)

    def both_at_once_all_threads_each(query: str) -> Any:
        background = pool.submit(sparse.encode_query, query)
        return dense.encode_query(query), background.result()

    def both_at_once_threads_split(query: str) -> Any:  # what the retriever does
        return encode_side_by_side(
            lambda: dense.encode_query(query), lambda: sparse.encode_query(query), pool=pool
        )

    paths: dict[str, Callable[[str], Any]] = {
        "dense alone": dense.encode_query,
        "sparse alone": sparse.encode_query,
        "one after the other": lambda q: (dense.encode_query(q), sparse.encode_query(q)),
        "both at once, all threads each": both_at_once_all_threads_each,
        "both at once, threads split (the retriever)": both_at_once_threads_split,
    }
    medians: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.runs):
        for name, call in paths.items():
            medians[name].append(median_ms(call, queries))
    report = {
        "median_ms_per_run": medians,
        "torch_threads": torch_threads(),
        "backend": args.backend,
        "queries": len(queries),
        "command": " ".join(["python", "benchmarks/query_encoding.py", *sys.argv[1:]]),
        "machine": machine_info(),
    }
    print(json.dumps(report, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
