"""Query encoding latency: each encoder alone, one after the other, and both at once.

``HybridRetriever`` encodes a query with SPLADE in a worker thread while the dense
model runs in the caller; this measures what that buys on this machine. Median
over SciFact queries, models loaded and warmed up first. Not part of CI.

    python benchmarks/query_encoding.py --data ../shared/data/scifact [--threads 1]
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
    args = parser.parse_args()
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    queries = list(beir_queries(args.data).values())[: args.queries]
    dense, sparse = SentenceTransformerEncoder(), SpladeEncoder()
    dense.encode_query("warm-up")
    sparse.encode_query("warm-up")
    pool = ThreadPoolExecutor(1)

    def both_at_once(query: str) -> Any:
        background = pool.submit(sparse.encode_query, query)
        return dense.encode_query(query), background.result()

    report = {
        "dense_ms": median_ms(dense.encode_query, queries),
        "sparse_ms": median_ms(sparse.encode_query, queries),
        "one_after_the_other_ms": median_ms(
            lambda q: (dense.encode_query(q), sparse.encode_query(q)), queries
        ),
        "both_at_once_ms": median_ms(both_at_once, queries),
        "queries": len(queries),
        "command": " ".join(["python", "benchmarks/query_encoding.py", *sys.argv[1:]]),
        "machine": machine_info(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
