"""What the opt-in BM25 branch costs (issue 26 item 4): ingestion and ``invoke`` p50.

Indexes the first ``--docs`` documents of a BEIR corpus into two collections on the
default engine (Qdrant Edge), one with the two default branches and one with
``bm25_encoder=True``, alternating (``--rounds`` each, a fresh folder each time), then
runs ``--queries`` test queries one at a time against both, alternating query by query,
with the query cache off, after a warm-up. Same process, same models, same machine, so
the machine's drift falls on both sides alike. Also times ``Bm25Encoder`` alone over the
same documents (the part of ingestion BM25 adds) and ``encode_query`` over the queries
(the part of ``invoke``), and reports the median of the per-query differences (three
branches minus two), steadier than the difference of two p50s. Not part of CI.

    python benchmarks/bm25_cost.py --data ../shared/data/scifact --docs 1000 \
        --queries 200 --out benchmarks/results/bm25_cost.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from hybrid_retriever import HybridRetriever, SentenceTransformerEncoder, SpladeEncoder
from hybrid_retriever.encoders.bm25 import Bm25Encoder
from hybrid_retriever.evaluation import beir_corpus, beir_queries
from hybrid_retriever.machine import machine_info

VARIANTS = {"two branches (bm25_encoder=False)": False, "three branches (the default)": True}


def ingest(documents: list[Any], folder: Path, *, bm25: bool, encoders: dict[str, Any]) -> float:
    """Documents per second, creating the collection included."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation warnings: the same on both sides
        retriever = HybridRetriever.from_documents(
            documents, path=str(folder), bm25_encoder=bm25, show_progress=False, **encoders
        )
    elapsed = time.perf_counter() - start
    retriever.close()
    return len(documents) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    corpus = beir_corpus(args.data)
    documents = [doc for _, doc in zip(range(args.docs), corpus, strict=False)]
    queries = list(beir_queries(args.data).values())[: args.queries]
    encoders = {"dense_encoder": SentenceTransformerEncoder(), "sparse_encoder": SpladeEncoder()}
    for encoder in encoders.values():
        encoder.encode_query("warm-up")

    bm25 = Bm25Encoder()
    texts = [doc.page_content for doc in documents]
    start = time.perf_counter()
    bm25.encode_documents(texts)
    bm25_docs_per_s = len(texts) / (time.perf_counter() - start)
    query_times = []
    for query in queries:
        start = time.perf_counter()
        bm25.encode_query(query)
        query_times.append((time.perf_counter() - start) * 1000)

    ingestion: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(args.rounds):
            for name, with_bm25 in VARIANTS.items():
                folder = Path(scratch) / f"{round_number}-{with_bm25}"
                ingestion[name].append(ingest(documents, folder, bm25=with_bm25, encoders=encoders))
                print(f"ingestion {name}: {ingestion[name][-1]:.1f} docs/s", flush=True)
        retrievers = {
            name: HybridRetriever(
                path=str(Path(scratch) / f"0-{with_bm25}"),
                bm25_encoder=with_bm25,
                query_cache_size=0,
                k=args.k,
                **encoders,
            )
            for name, with_bm25 in VARIANTS.items()
        }
        for retriever in retrievers.values():
            for query in queries[:10]:
                retriever.invoke(query)
        latencies: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for number, query in enumerate(queries):
            order = list(retrievers.items())
            if number % 2:
                order.reverse()
            for name, retriever in order:
                start = time.perf_counter()
                retriever.invoke(query)
                latencies[name].append((time.perf_counter() - start) * 1000)
        for retriever in retrievers.values():
            retriever.close()

    result = {
        "command": (
            f"python benchmarks/bm25_cost.py --data {args.data} --docs {args.docs} "
            f"--queries {args.queries} --rounds {args.rounds} --k {args.k}"
        ),
        "machine": machine_info(),
        "documents": len(documents),
        "queries": len(queries),
        "bm25_encode_documents_docs_per_s": round(bm25_docs_per_s, 1),
        "bm25_encode_query_ms_p50": round(statistics.median(query_times), 4),
        "ingestion_docs_per_s": {
            name: {
                "runs": [round(v, 1) for v in values],
                "median": round(statistics.median(values), 1),
            }
            for name, values in ingestion.items()
        },
        "invoke_ms": {
            name: {
                "p50": round(statistics.median(values), 3),
                "p95": round(sorted(values)[int(0.95 * (len(values) - 1))], 3),
            }
            for name, values in latencies.items()
        },
    }
    two, three = (result["ingestion_docs_per_s"][name]["median"] for name in VARIANTS)
    p50_two, p50_three = (result["invoke_ms"][name]["p50"] for name in VARIANTS)
    result["ingestion_slowdown"] = round(1 - three / two, 4)
    result["invoke_p50_added_ms"] = round(p50_three - p50_two, 3)
    two_ms, three_ms = (latencies[name] for name in VARIANTS)
    result["invoke_added_ms_median_of_paired_differences"] = round(
        statistics.median(b - a for a, b in zip(two_ms, three_ms, strict=True)), 3
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
