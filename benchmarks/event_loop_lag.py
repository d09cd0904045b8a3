"""How long ``ainvoke`` on Qdrant Edge keeps the event loop from running other tasks.

A web app serves many requests on one event loop; a retriever that blocks it
stalls them all. This script runs ``--concurrency`` ``ainvoke`` calls at a time
over SciFact test queries (query cache off, so every call encodes), while a
ticker task asks to wake up every millisecond. The lag of each wake-up (how late
it ran) is what the other requests would feel. For contrast it measures the same
with the work done inline (the synchronous ``invoke`` called from the loop).

    python benchmarks/event_loop_lag.py --data ../shared/data/scifact --docs 2000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hybrid_retriever import HybridRetriever
from hybrid_retriever.evaluation import beir_corpus, beir_queries
from hybrid_retriever.machine import machine_info

TICK_S = 0.001


async def ticker(lags_ms: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(TICK_S)
        lags_ms.append((time.perf_counter() - start - TICK_S) * 1000)


async def measure(
    call: Callable[[str], Awaitable[Any]], queries: list[str], concurrency: int
) -> dict[str, float]:
    lags: list[float] = []
    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(lags, stop))
    start = time.perf_counter()
    for offset in range(0, len(queries), concurrency):
        await asyncio.gather(*(call(q) for q in queries[offset : offset + concurrency]))
    seconds = time.perf_counter() - start
    stop.set()
    await tick
    lags.sort()
    return {
        "queries": len(queries),
        "seconds": round(seconds, 2),
        "ticks": len(lags),
        "lag_ms_p50": round(statistics.median(lags), 3),
        "lag_ms_p99": round(lags[int(0.99 * (len(lags) - 1))], 3),
        "lag_ms_max": round(lags[-1], 3),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    documents = list(itertools.islice(beir_corpus(args.data), args.docs))
    queries = list(beir_queries(args.data).values())[: args.queries]
    with tempfile.TemporaryDirectory(prefix="loop-lag-") as folder:
        retriever = HybridRetriever(collection_name="lag", path=folder, query_cache_size=0)
        retriever.add_documents(documents, show_progress=False)
        await retriever.ainvoke("warm-up")

        async def inline(query: str) -> Any:
            return retriever.invoke(query)

        results = {
            "ainvoke": await measure(retriever.ainvoke, queries, args.concurrency),
            "invoke called on the loop (blocking, for contrast)": await measure(
                inline, queries, args.concurrency
            ),
        }
        retriever.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/event_loop_lag.json"))
    args = parser.parse_args()
    results = asyncio.run(run(args))
    report = {
        "command": " ".join(["python", "benchmarks/event_loop_lag.py", *sys.argv[1:]]),
        "machine": machine_info(),
        "docs": args.docs,
        "concurrency": args.concurrency,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
