"""The sparse branches alone (SPLADE and BM25) at 100k / 300k / 1M points on Qdrant Edge.

Where the time of a search goes at a million points, without building a million-point
HNSW graph (the dense index build is what takes ``benchmarks/scale.py`` most of an hour
per configuration at 1M on two cores). The points are ``scale.py``'s (the suite's real
SPLADE vectors, perturbed; BM25 vectors from the texts), without their dense vector. One
collection grows: at each size the index is built (``optimize``) and each branch is
searched alone (``storage.search``, 100 deep, no payload), and also with the SPLADE query
cut to its N heaviest terms (a search-time cut this package does not make: it changes
results; shown only to size the lever).

    python benchmarks/scale_sparse.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from scale import Pool

from hybrid_retriever.collection import CollectionSpec, Distance
from hybrid_retriever.encoders.bm25 import Bm25Encoder
from hybrid_retriever.storage.base import BranchQuery, StoredPoint
from hybrid_retriever.storage.edge import EdgeStorage
from hybrid_retriever.vectors import SparseVector

SIZES = (100_000, 300_000, 1_000_000)
QUERIES = 100


def top_terms(vector: SparseVector, n: int) -> SparseVector:
    order = np.argsort(vector.values)[::-1][:n]
    return SparseVector([vector.indices[i] for i in order], [vector.values[i] for i in order])


def p50(storage: EdgeStorage, branch: str, vectors: list[Any]) -> float:
    for v in vectors[:10]:
        storage.search("s", [BranchQuery(branch, v, limit=100, with_payload=False)], None)
    latencies = []
    for v in vectors:
        start = time.perf_counter()
        storage.search("s", [BranchQuery(branch, v, limit=100, with_payload=False)], None)
        latencies.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(latencies), 2)


def main() -> None:
    sizes = [int(s) for s in sys.argv[1:]] or list(SIZES)
    pool = Pool()
    bm25 = Bm25Encoder()
    step = max(1, len(pool.q_texts) // QUERIES)
    rows = [pool.q_texts.index(t) for t in pool.q_texts[::step][:QUERIES]]
    splade = [pool.row("q_splade", i) for i in rows]
    splade = [v for v in splade if v.indices]
    bm25_queries = [v for v in (bm25.encode_query(pool.q_texts[i]) for i in rows) if v.indices]
    results = []
    with tempfile.TemporaryDirectory(prefix="hr-sparse-", dir="/tmp") as workdir:
        storage = EdgeStorage(workdir)
        storage.create_collection(
            CollectionSpec("s", "dense", 384, Distance.COSINE, "sparse", "bm25")
        )
        written = 0
        for size in sizes:
            start = time.perf_counter()
            for lo in range(written, size, 1024):
                points = pool.points(lo, min(size, lo + 1024))
                storage.upsert(
                    "s",
                    [
                        StoredPoint(
                            p.id, {k: v for k, v in p.vectors.items() if k != "dense"}, p.payload
                        )
                        for p in points
                    ],
                )
            storage.optimize("s")
            written = size
            row = {
                "points": size,
                "build_seconds": round(time.perf_counter() - start, 1),
                "splade_ms_p50": p50(storage, "sparse", splade),
                "bm25_ms_p50": p50(storage, "bm25", bm25_queries),
                "splade_query_terms_mean": round(
                    float(np.mean([len(v.indices) for v in splade])), 1
                ),
                "load": os.getloadavg(),
            }
            for n in (10, 20):
                row[f"splade_top{n}_terms_ms_p50"] = p50(
                    storage, "sparse", [top_terms(v, n) for v in splade]
                )
            print(json.dumps(row), flush=True)
            results.append(row)
        storage.close()
    out = Path("benchmarks/results/scale_sparse.json")
    command = " ".join(["python", "benchmarks/scale_sparse.py", *sys.argv[1:]])
    out.write_text(json.dumps({"command": command, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
