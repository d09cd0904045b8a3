"""Points per second written from precomputed vectors into Qdrant Edge (issue 28, item 3).

Vectors are the real models' (384-dimensional all-MiniLM-L6-v2, splade-tiny SPLADE with
its real sparsity), sampled with replacement from an encoded suite corpus in the fusion
study's cache (read only), with each sampled document's own text as payload. They are in
memory as numpy arrays, as a batch job hands them over; nothing is encoded.

Three figures per size:

* ``engine_alone``: Edge's own upsert (``EdgeShard.update`` on ready ``Point`` s, the
  same batches): the ceiling; and with the building of those ``Point`` s from Python
  lists, which any Python caller pays (``python_points_and_upsert_per_s``);
* ``write``: ``HybridRetriever.add_embedded_documents`` minus the index build: checking
  each document and vector, ids and payloads, the engine's upsert;
* ``optimize``: Edge's index build (HNSW and sparse indexes), which the write call runs
  once at its end, as ``add_documents`` does; and ``end_to_end`` with it.

The retriever's models are loaded before timing (the call loads them once to record
their probe vectors, and to know the SPLADE vocabulary). Not run by CI.

    python benchmarks/precomputed_write.py --sizes 20000 100000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_retriever import EmbeddedDocument, HybridRetriever
from hybrid_retriever.machine import machine_info
from hybrid_retriever.model_catalog import DEFAULT_DENSE_MODEL, DEFAULT_SPARSE_MODEL

CACHE = Path("/tmp/fusion_study_cache")


class Sample:
    """Rows drawn from one encoded corpus: its dense matrix, SPLADE CSR matrix, texts."""

    def __init__(self, corpus: str, data: Path, size: int, seed: int = 0) -> None:
        import scipy.sparse as sp

        folder = CACHE / corpus
        self.dense = np.load(folder / "doc_dense.npy")
        self.sparse = sp.load_npz(folder / "doc_sparse.npz").tocsr()
        ids = json.loads((folder / "ids.json").read_text())
        doc_ids = ids["docs"] if isinstance(ids, dict) else ids
        texts = _corpus_texts(data / corpus / "corpus.jsonl")
        self.texts = [texts.get(str(i), "") for i in doc_ids]
        self.rows = np.random.default_rng(seed).integers(0, self.dense.shape[0], size)

    def terms_per_document(self) -> float:
        return float(self.sparse.nnz / self.sparse.shape[0])

    def documents(self) -> Iterator[EmbeddedDocument]:
        indptr, indices, data = self.sparse.indptr, self.sparse.indices, self.sparse.data
        for number, row in enumerate(self.rows):
            start, end = indptr[row], indptr[row + 1]
            yield EmbeddedDocument(
                page_content=self.texts[row] or f"document {row}",
                dense=self.dense[row],
                sparse={"indices": indices[start:end], "values": data[start:end]},
                metadata={"row": int(row)},
                id=f"p{number}",
            )


def _corpus_texts(path: Path) -> dict[str, str]:
    texts = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            texts[str(record["_id"])] = f"{record.get('title', '')} {record['text']}".strip()
    return texts


def engine_alone(sample: Sample, batch_size: int, *, build: bool = True) -> dict[str, Any]:
    """Edge's upsert of ready points, timed alone (points built outside the timing)."""
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeShard,
        EdgeSparseVectorParams,
        EdgeVectorParams,
        Point,
        SparseVector,
        UpdateOperation,
    )

    folder = tempfile.mkdtemp(prefix="precomputed-engine-")
    config = EdgeConfig(
        vectors={"dense": EdgeVectorParams(size=384, distance=Distance.Cosine)},
        sparse_vectors={"sparse": EdgeSparseVectorParams()},
    )
    shard = EdgeShard.create(str(Path(folder) / "c"), config)
    upserting = building = 0.0
    batch: list[Any] = []

    def flush() -> float:
        operation = UpdateOperation.upsert_points(batch)
        start = time.perf_counter()
        shard.update(operation)
        return time.perf_counter() - start

    for document in sample.documents():
        started = time.perf_counter()
        sparse = document.sparse
        if not isinstance(sparse, dict):
            raise TypeError("Sample.documents gives sparse vectors as dicts")
        batch.append(
            Point(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, str(document.id))),
                vector={
                    "dense": document.dense.tolist(),
                    "sparse": SparseVector(
                        indices=sparse["indices"].tolist(), values=sparse["values"].tolist()
                    ),
                },
                payload={"page_content": document.page_content, "metadata": document.metadata},
            )
        )
        building += time.perf_counter() - started
        if len(batch) == batch_size:
            upserting += flush()
            batch = []
    if batch:
        upserting += flush()
    start = time.perf_counter()
    if build:
        shard.flush()
        shard.optimize()
    optimizing = time.perf_counter() - start
    shard.close()
    n = len(sample.rows)
    return {
        "upsert_s": round(upserting, 2),
        "upsert_points_per_s": round(n / upserting),
        "python_points_s": round(building, 2),
        "python_points_and_upsert_per_s": round(n / (building + upserting)),
        "optimize_s": round(optimizing, 2),
        "end_to_end_points_per_s": round(n / (upserting + optimizing)),
    }


def through_the_api(
    sample: Sample, batch_size: int, *, bm25: bool, build: bool = True
) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="precomputed-api-")
    retriever = HybridRetriever(collection_name="c", path=folder, bm25_encoder=bm25 or None)
    retriever.dense_encoder.encode_query("warm up")
    retriever.sparse_encoder.encode_query("warm up")
    storage = retriever.storage
    optimize = storage.optimize
    timings = {"optimize_s": 0.0}

    def timed_optimize(collection: str) -> None:
        start = time.perf_counter()
        if build:
            optimize(collection)
        timings["optimize_s"] += time.perf_counter() - start

    storage.optimize = timed_optimize  # type: ignore[method-assign]
    # The first call's one-time work (record the models' probes, read the vocabulary)
    # is timed apart: one document.
    start = time.perf_counter()
    first = next(sample.documents())
    retriever.add_embedded_documents(
        [first],
        dense_model=DEFAULT_DENSE_MODEL,
        sparse_model=DEFAULT_SPARSE_MODEL,
        show_progress=False,
    )
    setup = time.perf_counter() - start
    timings["optimize_s"] = 0.0
    start = time.perf_counter()
    retriever.add_embedded_documents(
        sample.documents(),
        dense_model=DEFAULT_DENSE_MODEL,
        sparse_model=DEFAULT_SPARSE_MODEL,
        batch_size=batch_size,
        show_progress=False,
    )
    total = time.perf_counter() - start
    count = retriever.count()
    retriever.close()
    n = len(sample.rows)
    writing = total - timings["optimize_s"]
    return {
        "bm25_branch": bm25,
        "points_in_collection": count,
        "first_call_setup_s": round(setup, 2),
        "write_s": round(writing, 2),
        "write_points_per_s": round(n / writing),
        "optimize_s": round(timings["optimize_s"], 2),
        "end_to_end_points_per_s": round(n / total),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--corpus", default="scifact")
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--bm25", action="store_true", help="also with a BM25 branch")
    parser.add_argument(
        "--no-index-build",
        action="store_true",
        help="skip Edge's index build (write rates only: minutes less on a busy machine)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = []
    build = not args.no_index_build
    for size in args.sizes:
        sample = Sample(args.corpus, args.data, size)
        row: dict[str, Any] = {
            "points": size,
            "batch_size": args.batch_size,
            "sparse_terms_per_document": round(sample.terms_per_document(), 1),
            "load_average_before": os.getloadavg(),
            "index_build": not args.no_index_build,
            "engine_alone": engine_alone(sample, args.batch_size, build=build),
            "api": through_the_api(sample, args.batch_size, bm25=False, build=build),
        }
        if args.bm25:
            row["api_with_bm25"] = through_the_api(sample, args.batch_size, bm25=True, build=build)
        row["load_average_after"] = os.getloadavg()
        print(json.dumps(row), flush=True)
        results.append(row)
    report = {
        "command": " ".join(["python", "benchmarks/precomputed_write.py", *sys.argv[1:]]),
        "machine": machine_info(),
        "uptime": os.popen("uptime").read().strip(),
        "corpus": args.corpus,
        "results": results,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
