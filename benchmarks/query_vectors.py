"""What encoding each query alone costs, and what batching would change in the vectors.

``HybridRetriever`` encodes every query in its own forward pass, on
``QUERY_TORCH_THREADS`` torch threads (``encoders/threads.py``), so that a query's vector
does not depend on the batch it came in. This measures, per SciFact query and per
encoder, the latency of that path against the alternatives (dense in fp32 or bf16
autocast, 1 or 2 threads, batches of ``--batch`` queries), and how far the vectors of
each alternative lie from it (largest coordinate difference; 0 means identical). The
difference between a batch and a query alone is what this machine's kernels do; on
other CPUs it differs, which is why the retriever never batches queries. Not part of CI.

    python benchmarks/query_vectors.py --data ../shared/data/scifact --runs 3 \
        --out benchmarks/results/query_vectors.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from hybrid_retriever import SentenceTransformerEncoder, SpladeEncoder
from hybrid_retriever.encoders.precision import cpu_has_native_bf16, inference_context
from hybrid_retriever.encoders.threads import torch_threads_set_to
from hybrid_retriever.evaluation import beir_queries
from hybrid_retriever.machine import machine_info

Encode = Callable[[Sequence[str]], list[list[float]]]


def dense_path(model: Any, dtype: torch.dtype, threads: int) -> Encode:
    def encode(texts: Sequence[str]) -> list[list[float]]:
        with torch_threads_set_to(threads), inference_context(model.device, dtype):
            vectors = model.encode_query(
                list(texts), batch_size=len(texts), convert_to_tensor=True, show_progress_bar=False
            )
        return [list(row) for row in vectors.float().cpu().tolist()]

    return encode


def sparse_path(model: Any, threads: int) -> Encode:
    def encode(texts: Sequence[str]) -> list[list[float]]:
        with torch_threads_set_to(threads), inference_context(model.device, torch.float32):
            matrix = model.encode_query(
                list(texts), batch_size=len(texts), convert_to_tensor=True, show_progress_bar=False
            )
            dense_matrix = matrix.to_dense() if matrix.is_sparse else matrix
        return [list(row) for row in dense_matrix.float().cpu().tolist()]

    return encode


def per_query_ms(encode: Encode, queries: list[str], batch: int) -> tuple[float, list[list[float]]]:
    """Median milliseconds per query over the batches, and the vectors in query order."""
    times: list[float] = []
    vectors: list[list[float]] = []
    for start in range(0, len(queries), batch):
        texts = queries[start : start + batch]
        begin = time.perf_counter()
        vectors.extend(encode(texts))
        times.append((time.perf_counter() - begin) * 1000 / len(texts))
    return round(statistics.median(times), 2), vectors


def largest_difference(these: list[list[float]], reference: list[list[float]]) -> float:
    return max(
        max(abs(a - b) for a, b in zip(row, ref, strict=True))
        for row, ref in zip(these, reference, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8, help="queries per pass when batched")
    parser.add_argument("--runs", type=int, default=1, help="repeat every path, interleaved")
    parser.add_argument("--out", type=Path, help="also write the report here (JSON)")
    args = parser.parse_args()
    queries = list(beir_queries(args.data).values())[: args.queries]
    dense = SentenceTransformerEncoder().model
    sparse = SpladeEncoder().model
    fp32, bf16 = torch.float32, torch.bfloat16
    paths: dict[str, tuple[Encode, int]] = {
        "dense alone, fp32, 1 thread (the retriever)": (dense_path(dense, fp32, 1), 1),
        "dense alone, fp32, 2 threads": (dense_path(dense, fp32, 2), 1),
        "dense alone, bf16, 1 thread": (dense_path(dense, bf16, 1), 1),
        "dense alone, bf16, 2 threads": (dense_path(dense, bf16, 2), 1),
        f"dense batches of {args.batch}, fp32, 2 threads": (dense_path(dense, fp32, 2), args.batch),
        f"dense batches of {args.batch}, bf16, 2 threads": (dense_path(dense, bf16, 2), args.batch),
        "sparse alone, fp32, 1 thread (the retriever)": (sparse_path(sparse, 1), 1),
        "sparse alone, fp32, 2 threads": (sparse_path(sparse, 2), 1),
        f"sparse batches of {args.batch}, fp32, 2 threads": (sparse_path(sparse, 2), args.batch),
    }
    for encode, _ in paths.values():
        encode(["warm-up"])
    medians: dict[str, list[float]] = {name: [] for name in paths}
    vectors: dict[str, list[list[float]]] = {}
    for _ in range(args.runs):
        for name, (encode, batch) in paths.items():
            ms, vectors[name] = per_query_ms(encode, queries, batch)
            medians[name].append(ms)
    reference = {"dense": vectors[next(iter(paths))], "sparse": vectors[list(paths)[6]]}
    differences = {
        name: largest_difference(found, reference[name.split()[0]])
        for name, found in vectors.items()
        if "bf16" not in name
    }
    bf16_alone = vectors["dense alone, bf16, 1 thread"]
    differences["dense bf16 batches vs bf16 alone (1 thread)"] = largest_difference(
        vectors[f"dense batches of {args.batch}, bf16, 2 threads"], bf16_alone
    )
    differences["dense bf16 alone, 2 threads vs 1 thread"] = largest_difference(
        vectors["dense alone, bf16, 2 threads"], bf16_alone
    )
    report = {
        "median_ms_per_query_per_run": medians,
        "largest_coordinate_difference_from_the_retriever_path": differences,
        "native_bf16": cpu_has_native_bf16(),
        "queries": len(queries),
        "command": " ".join(["python", "benchmarks/query_vectors.py", *sys.argv[1:]]),
        "machine": machine_info(),
    }
    print(json.dumps(report, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
