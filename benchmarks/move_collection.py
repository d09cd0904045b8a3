"""Moving a collection: Edge -> qdrant-client's embedded mode -> Edge, at 100,000 points.

The Done-when of issue 28 item 4: "A collection of 100,000 points moves to qdrant-client's
local mode and back, identical counts, and the same top 10 on 100 queries." qdrant-client's
embedded mode stands in for a Qdrant server (none here): the same client, the same calls.

The collection is built on Edge from real vectors: the int8 default models' dense (384-d)
and SPLADE vectors of the suite's documents, read from the fusion study's cache
(``/tmp/fusion_study_cache/<corpus>/doc_dense.npy``, ``doc_sparse.npz``, read-only), and,
with ``--bm25``, BM25 vectors of the same documents' texts (``Bm25Encoder``, no model).
Past the ~26,000 real documents, vectors repeat with small perturbations (dense: Gaussian
noise, sigma 0.01, renormalised; sparse: each weight times a factor in [0.9, 1.1]), as in
``benchmarks/scale.py``, so that no two points are identical (no ties between copies). The
model record is written by the real default encoders, as indexing would.

Then :func:`hybrid_retriever.move.copy_collection` copies it to qdrant-client's embedded
mode on disk and from there back to a new Edge folder, each copy verifying itself (counts,
exact top 10 of 100 sampled points' stored vectors per branch). Independently of that check,
this script searches all three collections exactly with 100 real query vectors (dense and
SPLADE, from the cache's query vectors) and 100 stored vectors per branch, and compares the
top 10s (:func:`hybrid_retriever.move.same_top`); it also compares the two Edge collections'
default (HNSW, approximate) searches. Timings are on whatever else the machine is doing:
the load average is recorded. Not run by CI.

    python benchmarks/move_collection.py --points 100000 --bm25 \\
        --out benchmarks/results/move_collection.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_retriever.collection import CollectionSpec, Distance
from hybrid_retriever.machine import machine_info
from hybrid_retriever.move import TOP_K, copy_collection, same_top
from hybrid_retriever.storage.base import BranchQuery, StorageBackend, StoredPoint
from hybrid_retriever.storage.connect import open_storage
from hybrid_retriever.vectors import SparseVector

CACHE = Path("/tmp/fusion_study_cache")
DATA = Path("/work/shared/data")
CORPORA = ("scifact", "nfcorpus", "npl", "cacm", "cisi", "medline")
COLLECTION = "moved"
WRITE_BATCH = 512


def load_real_vectors(*, bm25: bool) -> dict[str, Any]:
    """Every suite document's cached dense and SPLADE vectors (and BM25 of its text), and
    the suite's cached query vectors."""
    import scipy.sparse as sp

    dense, sparse, origin, queries_dense, queries_sparse = [], [], [], [], []
    texts: list[str] = []
    for corpus in CORPORA:
        folder = CACHE / corpus
        ids = json.loads((folder / "ids.json").read_text())["docs"]
        dense.append(np.load(folder / "doc_dense.npy"))
        sparse.append(sp.load_npz(folder / "doc_sparse.npz").tocsr())
        origin += [(corpus, doc_id) for doc_id in ids]
        queries_dense.append(np.load(folder / "query_dense.npy"))
        queries_sparse.append(sp.load_npz(folder / "query_sparse.npz").tocsr())
        if bm25:
            corpus_texts = {}
            with open(DATA / corpus / "corpus.jsonl", encoding="utf-8") as handle:
                for line in handle:
                    row = json.loads(line)
                    corpus_texts[str(row["_id"])] = f"{row.get('title') or ''} {row['text']}"
            texts += [corpus_texts[str(doc_id)] for doc_id in ids]
    vectors: dict[str, Any] = {
        "dense": np.concatenate(dense).astype(np.float32),
        "sparse": sp.vstack(sparse).tocsr(),
        "origin": origin,
        "query_dense": np.concatenate(queries_dense).astype(np.float32),
        "query_sparse": sp.vstack(queries_sparse).tocsr(),
    }
    if bm25:
        from hybrid_retriever.encoders.bm25 import Bm25Encoder

        encoder = Bm25Encoder()
        vectors["bm25"] = encoder.encode_documents(texts)
        vectors["bm25_encoder"] = encoder
    return vectors


def row(matrix: Any, index: int) -> SparseVector:
    start, end = matrix.indptr[index], matrix.indptr[index + 1]
    return SparseVector(
        indices=[int(i) for i in matrix.indices[start:end]],
        values=[float(v) for v in matrix.data[start:end]],
    )


def point(vectors: dict[str, Any], index: int) -> StoredPoint:
    """Point ``index``: real document ``index % n``, perturbed past the first copy."""
    n = len(vectors["origin"])
    base, copy = index % n, index // n
    dense = vectors["dense"][base]
    sparse = row(vectors["sparse"], base)
    bm25 = vectors["bm25"][base] if "bm25" in vectors else None
    if copy:
        rng = np.random.default_rng((copy, base))
        noisy = dense + rng.normal(0.0, 0.01, dense.shape).astype(np.float32)
        dense = noisy / np.linalg.norm(noisy)
        sparse = SparseVector(
            sparse.indices,
            [
                v * s
                for v, s in zip(
                    sparse.values, rng.uniform(0.9, 1.1, len(sparse.values)), strict=True
                )
            ],
        )
        if bm25 is not None:
            bm25 = SparseVector(
                bm25.indices,
                [
                    v * s
                    for v, s in zip(
                        bm25.values, rng.uniform(0.9, 1.1, len(bm25.values)), strict=True
                    )
                ],
            )
    corpus, doc_id = vectors["origin"][base]
    named: dict[str, Any] = {"dense": [float(x) for x in dense], "sparse": sparse}
    if bm25 is not None:
        named["bm25"] = bm25
    import uuid

    return StoredPoint(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"move-benchmark/{index}")),
        vectors=named,
        payload={
            "page_content": f"synthetic {index}: copy {copy} of {corpus}/{doc_id}",
            "metadata": {"corpus": corpus, "source_id": str(doc_id), "copy": copy},
        },
    )


def build_edge(path: Path, vectors: dict[str, Any], points: int) -> float:
    """The source collection, with the record the default encoders write; seconds taken."""
    from hybrid_retriever.encoders.dense import SentenceTransformerEncoder
    from hybrid_retriever.encoders.splade import SpladeEncoder
    from hybrid_retriever.model_record import new_record

    spec = CollectionSpec(
        name=COLLECTION,
        dense_vector_name="dense",
        dense_size=384,
        distance=Distance.COSINE,
        sparse_vector_name="sparse",
        bm25_vector_name="bm25" if "bm25" in vectors else None,
    )
    record = new_record(
        spec, SentenceTransformerEncoder(), SpladeEncoder(), vectors.get("bm25_encoder")
    )
    storage = open_storage(path=path, engine="edge")
    started = time.perf_counter()
    storage.create_recorded_collection(spec, record)
    for start in range(0, points, WRITE_BATCH):
        storage.upsert(
            COLLECTION, [point(vectors, i) for i in range(start, min(points, start + WRITE_BATCH))]
        )
    storage.optimize(COLLECTION)
    seconds = time.perf_counter() - started
    storage.close()
    return seconds


def query_sets(vectors: dict[str, Any], points: int, n: int) -> dict[str, list[BranchQuery]]:
    """n real queries per model branch, n stored vectors of spread points per branch."""
    rng = np.random.default_rng(7)
    picked = rng.choice(len(vectors["query_dense"]), size=n, replace=False)
    stored = [point(vectors, int(i)) for i in np.linspace(0, points - 1, n).astype(int)]
    sets = {
        "dense (real queries)": [
            BranchQuery("dense", [float(x) for x in vectors["query_dense"][i]], TOP_K, False, True)
            for i in picked
        ],
        "sparse (real queries)": [
            BranchQuery("sparse", row(vectors["query_sparse"], int(i)), TOP_K, False, True)
            for i in picked
        ],
    }
    for name in stored[0].vectors:
        sets[f"{name} (stored vectors)"] = [
            BranchQuery(name, p.vectors[name], TOP_K, False, True) for p in stored
        ]
    return sets


def search_all(
    where: dict[str, Any] | StorageBackend,
    sets: dict[str, list[BranchQuery]],
    *,
    exact: bool = True,
) -> tuple[dict[str, list[Any]], int, float]:
    import warnings

    storage = (
        where if isinstance(where, StorageBackend) else open_storage(**where, collection=COLLECTION)
    )
    started = time.perf_counter()
    results = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Local mode performs exact")
        for label, queries in sets.items():
            if not exact:
                queries = [
                    BranchQuery(q.vector_name, q.vector, q.limit, False, False) for q in queries
                ]
            results[label] = storage.search(COLLECTION, queries, None)
    seconds = time.perf_counter() - started
    count = storage.count(COLLECTION)
    if storage is not where:
        storage.close()
    return results, count, seconds


def agreement(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> dict[str, str]:
    """Per query set, how many of the queries ``b`` ran gave the same top 10 in ``a``."""
    return {
        label: f"{sum(same_top(x, y) for x, y in zip(a[label], b[label], strict=False))}"
        f"/{len(b[label])}"
        for label in b
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--bm25", action="store_true", help="add a BM25 vector (IDF modifier)")
    parser.add_argument(
        "--copy-verify-queries",
        type=int,
        default=100,
        help="verify_queries of each copy_collection call (each searches qdrant-client)",
    )
    parser.add_argument(
        "--local-sparse-queries",
        type=int,
        default=100,
        help="queries per sparse set run on qdrant-client (its sparse search is pure Python: "
        "about a minute a query at 100k points on a busy 2-core machine)",
    )
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="move-benchmark-"))
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    edge = {"path": workdir / "edge", "engine": "edge"}
    # In memory: on disk, qdrant-client's embedded mode commits each point to SQLite on its
    # own (about 35 points/s here); a server is the real target of a move anyway.
    local = open_storage(location=":memory:", engine="qdrant-client")
    back = {"path": workdir / "edge-back", "engine": "edge"}
    load_before = os.getloadavg()

    started = time.perf_counter()
    vectors = load_real_vectors(bm25=args.bm25)
    load_seconds = time.perf_counter() - started
    print(f"{len(vectors['origin'])} real documents loaded in {load_seconds:.0f} s", flush=True)
    build_seconds = build_edge(workdir / "edge", vectors, args.points)
    print(f"Edge source built in {build_seconds:.0f} s", flush=True)

    there = copy_collection(
        COLLECTION, source=edge, target=local, verify_queries=args.copy_verify_queries
    )
    print(f"to qdrant-client: {there}", flush=True)
    back_report = copy_collection(
        COLLECTION, source=local, target=back, verify_queries=args.copy_verify_queries
    )
    print(f"back to Edge: {back_report}", flush=True)

    sets = query_sets(vectors, args.points, args.queries)
    source_hits, source_count, source_search = search_all(edge, sets)
    local_sets = {
        label: queries if label.startswith("dense") else queries[: args.local_sparse_queries]
        for label, queries in sets.items()
    }
    local_hits, local_count, local_search = search_all(local, local_sets)
    back_hits, back_count, back_search = search_all(back, sets)
    source_hnsw, _, _ = search_all(edge, sets, exact=False)
    back_hnsw, _, _ = search_all(back, sets, exact=False)

    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "points": args.points,
        "real_documents": len(vectors["origin"]),
        "vectors": [
            "dense (384-d, Cosine)",
            "sparse (SPLADE)",
            *(["bm25 (IDF)"] if args.bm25 else []),
        ],
        "counts": {"edge": source_count, "qdrant_client": local_count, "edge_back": back_count},
        "seconds": {
            "build_edge_source": round(build_seconds, 1),
            "copy_edge_to_qdrant_client": there.seconds,
            "copy_qdrant_client_to_edge": back_report.seconds,
            "exact_searches_edge": round(source_search, 1),
            "exact_searches_qdrant_client": round(local_search, 1),
            "exact_searches_edge_back": round(back_search, 1),
        },
        "points_per_second": {
            "to_qdrant_client": round(args.points / there.seconds),
            "back_to_edge": round(args.points / back_report.seconds),
        },
        "copy_reports": {
            "to_qdrant_client": _as_dict(there),
            "back_to_edge": _as_dict(back_report),
        },
        "same_top10_exact": {
            "edge_vs_qdrant_client": agreement(source_hits, local_hits),
            "edge_vs_edge_back": agreement(source_hits, back_hits),
        },
        "same_top10_default_hnsw_edge_vs_edge_back": agreement(source_hnsw, back_hnsw),
        "disk_bytes": {
            name: sum(f.stat().st_size for f in (workdir / folder).rglob("*") if f.is_file())
            for name, folder in (
                ("edge", "edge"),
                ("edge_back", "edge-back"),
            )
        },
        "qdrant_client": "embedded, in memory (location=':memory:')",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": machine_info(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _as_dict(report: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(report)


if __name__ == "__main__":
    raise SystemExit(main())
