"""One hit per source on the long-text benchmark: what ``group_by`` (the default) returns.

On a collection of chunks built by ``benchmarks/long_texts.sh`` (its ``index`` step:
``hybrid-retriever index corpus.jsonl``, chunked), runs every query of the long-query and
the short-query datasets three ways through ``invoke``:

* ``before``: today's way of judging chunks (``hybrid-retriever eval --chunking``): the
  top 100 chunks with ``group_by=None``, each document ranked where its best chunk is;
* ``group_by``: ``invoke(q, k=10)`` and ``invoke(q, k=100)`` with the default grouping,
  which must hold 10 (100) distinct sources whenever the collection has them.

and reports nDCG@10 and Recall@100 of each, the number of queries whose top 10 holds
fewer than 10 sources, and the query latency.

    benchmarks/long_texts.sh ../shared/data/scifact /tmp/long_texts  # STEPS=index is enough
    python benchmarks/long_texts_group_by.py --work /tmp/long_texts \
        --out benchmarks/results/long_texts_group_by.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from hybrid_retriever import HybridRetriever
from hybrid_retriever.evaluation import beir_qrels, beir_queries, score_run
from hybrid_retriever.machine import machine_info
from hybrid_retriever.tuning import hit_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/long_texts"))
    parser.add_argument("--store", default="qdrant_index", help="collection folder in --work")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    retriever = HybridRetriever(path=str(args.work / args.store), collection_name="long")
    report: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "dataset": (args.work / "dataset.txt").read_text().strip(),
        "passages": retriever.count(),
        "machine": machine_info(),
        "load_average_before": os.getloadavg(),
        "queries": {},
    }
    for name in ("long_scifact", "long_scifact_short"):
        folder = args.work / name
        queries, qrels = beir_queries(folder), beir_qrels(folder, "test")
        runs: dict[str, dict[str, dict[str, float]]] = {"before": {}, "group_by": {}}
        deep: dict[str, dict[str, float]] = {}
        short_of_ten, latencies = 0, []
        for query_id, text in queries.items():
            chunks = retriever.invoke(text, k=100, group_by=None)
            runs["before"][query_id] = ranking(chunks)
            start = time.perf_counter()
            top10 = retriever.invoke(text, k=10)
            latencies.append((time.perf_counter() - start) * 1000)
            sources = [hit_id(str(d.id), d.metadata) for d in top10]
            short_of_ten += len(set(sources)) < 10
            runs["group_by"][query_id] = ranking(top10)
            deep[query_id] = ranking(retriever.invoke(text, k=100))
        scores = {run: score_run(qrels, ranked) for run, ranked in runs.items()}
        scores["group_by_k100"] = score_run(qrels, deep)
        report["queries"][name] = {
            "count": len(queries),
            "ndcg@10": {run: round(s["ndcg@10"], 4) for run, s in scores.items()},
            "recall@100": {
                "before": round(scores["before"]["recall@100"], 4),
                "group_by_k100": round(scores["group_by_k100"]["recall@100"], 4),
            },
            "queries_whose_top10_has_fewer_than_10_sources": short_of_ten,
            "group_by_k10_latency_ms_median": round(statistics.median(latencies), 1),
        }
        print(name, json.dumps(report["queries"][name]))
    report["load_average_after"] = os.getloadavg()
    retriever.close()
    args.out.write_text(json.dumps(report, indent=2) + "\n")


def ranking(documents: list[Any]) -> dict[str, float]:
    """Documents ranked where their best chunk is (as ``eval --chunking`` judges them)."""
    ranked = list(dict.fromkeys(hit_id(str(d.id), d.metadata) for d in documents))
    return {doc_id: -float(rank) for rank, doc_id in enumerate(ranked, start=1)}


if __name__ == "__main__":
    main()
