"""nDCG@10 / Recall@100 / MRR@10 of dense, sparse and hybrid runs on a BEIR dataset.

Indexes the whole corpus once into an on-disk embedded Qdrant collection (a rerun
reuses it when it is complete), then runs the test queries three ways through
the same HybridRetriever: dense only, sparse only (weight 0 on the other branch)
and hybrid RRF. Not part of CI.

    python benchmarks/scifact_quality.py --data ../shared/data/scifact
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine_info

from hybrid_retriever import HybridRetriever
from hybrid_retriever.evaluation import (
    beir_corpus,
    beir_qrels,
    beir_queries,
    run_retriever,
    score_run,
)

RUNS = {
    "dense": {"weights": {"dense": 1.0, "sparse": 0.0}},
    "sparse": {"weights": {"dense": 0.0, "sparse": 1.0}},
    "hybrid": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--path", type=Path, default=Path("/tmp/hybrid-retriever-scifact"))
    parser.add_argument("--depth", type=int, default=100, help="documents retrieved per query")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scifact_quality.json"))
    args = parser.parse_args()

    retriever = HybridRetriever(collection_name="scifact", path=str(args.path))
    n_docs = sum(1 for _ in beir_corpus(args.data))
    start = time.perf_counter()
    existing = retriever.count() if retriever.storage.get_layout("scifact") else 0
    if existing != n_docs:
        retriever.add_documents(beir_corpus(args.data))
    index_seconds = time.perf_counter() - start
    queries_all = beir_queries(args.data)
    qrels = beir_qrels(args.data, args.split)
    queries = {q: queries_all[q] for q in qrels}

    report: dict[str, object] = {
        "dataset": str(args.data.name),
        "split": args.split,
        "num_docs": n_docs,
        "num_queries": len(queries),
        "index_seconds": round(index_seconds, 1) if existing != n_docs else None,
        "engine": "qdrant-client embedded (on disk)",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        "runs": {},
    }
    for name, options in RUNS.items():
        result = run_retriever(retriever, queries, k=args.depth, **options)
        metrics = score_run(qrels, result.ranking)
        metrics["query_ms_p50"] = statistics.median(result.latencies_ms)
        report["runs"][name] = metrics  # type: ignore[index]
        print(name, json.dumps(metrics), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
