"""What bf16 costs in quality: nDCG@10 and top-10 overlap against fp32, on a BEIR dataset.

Indexes the corpus twice, once with both encoders in fp32 and once in bf16
(``Precision.BF16``: dense under bf16 autocast, SPLADE with bf16 screening and
fp32 re-scoring), into two on-disk Qdrant Edge collections, then runs the test
queries dense-only, sparse-only and hybrid (the default fusion) against each.
Reports nDCG@10 per run and precision, the difference, and how many of the top 10 documents the two
precisions share per query (mean over queries). Indexing time is reported too.
Not part of CI.

    python benchmarks/precision_quality.py --data ../shared/data/scifact
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from hybrid_retriever import (
    CollectionNotFoundError,
    HybridRetriever,
    SentenceTransformerEncoder,
    SpladeEncoder,
)
from hybrid_retriever.evaluation import (
    beir_corpus,
    beir_qrels,
    beir_queries,
    run_retriever,
    score_run,
)
from hybrid_retriever.machine import machine_info

RUNS: dict[str, dict[str, Any]] = {
    "dense": {"weights": {"dense": 1.0, "sparse": 0.0}},
    "sparse": {"weights": {"dense": 0.0, "sparse": 1.0}},
    "hybrid": {},
}
PRECISIONS = ("fp32", "bf16")


def index(data: Path, precision: str, folder: Path) -> tuple[HybridRetriever, float | None]:
    """The corpus indexed at ``precision``; reuses a complete earlier index."""
    retriever = HybridRetriever(
        collection_name=f"{data.name}-{precision}",
        path=str(folder),
        dense_encoder=SentenceTransformerEncoder(precision=precision, backend="torch"),
        sparse_encoder=SpladeEncoder(precision=precision, backend="torch"),
    )
    documents = list(beir_corpus(data))
    try:
        if retriever.count() == len(documents):
            return retriever, None
    except CollectionNotFoundError:
        pass
    retriever.dense_encoder.encode_query("warm-up")
    retriever.sparse_encoder.encode_query("warm-up")
    start = time.perf_counter()
    retriever.add_documents(documents, batch_size=256)
    return retriever, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--path", type=Path, default=Path("/tmp/hybrid-retriever-precision"))
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/precision_quality.json")
    )
    args = parser.parse_args()

    qrels = beir_qrels(args.data, args.split)
    queries = {q: t for q, t in beir_queries(args.data).items() if q in qrels}
    rankings: dict[str, dict[str, Any]] = {}
    report: dict[str, Any] = {"index_seconds": {}, "ndcg@10": {}, "top10_overlap": {}}
    for precision in PRECISIONS:
        retriever, seconds = index(args.data, precision, args.path / precision)
        report["index_seconds"][precision] = None if seconds is None else round(seconds, 1)
        rankings[precision] = {}
        for name, options in RUNS.items():
            run = run_retriever(retriever, queries, k=10, **options)
            rankings[precision][name] = run
            scores = score_run(qrels, run.ranking, metrics=("ndcg@10",))
            report["ndcg@10"].setdefault(name, {})[precision] = round(scores["ndcg@10"], 4)
        retriever.close()
    for name in RUNS:
        fp32, bf16 = rankings["fp32"][name], rankings["bf16"][name]
        shared = [
            len(set(fp32.ranked_ids(q)[:10]) & set(bf16.ranked_ids(q)[:10])) / 10 for q in queries
        ]
        report["top10_overlap"][name] = round(statistics.fmean(shared), 4)
        row = report["ndcg@10"][name]
        row["bf16_minus_fp32"] = round(row["bf16"] - row["fp32"], 4)
    report.update(
        dataset=args.data.resolve().name,
        split=args.split,
        num_queries=len(queries),
        command=" ".join(["python", "benchmarks/precision_quality.py", *sys.argv[1:]]),
        machine=machine_info(),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
