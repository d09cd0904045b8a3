"""Search latency, memory, disk and build time at 100k / 300k / 1M points on Qdrant Edge,
for the default storage and each ``VectorStorage`` option.

Vectors are the real models' output: every document of the six suite corpora encoded
by the study (``/tmp/fusion_study_cache/<corpus>/doc_dense.npy`` and ``doc_sparse.npz``,
about 25,000 documents, read-only), replicated with small perturbations up to each size
(dense: Gaussian noise, sigma 0.01, renormalised; SPLADE: each weight scaled by a factor
in [0.9, 1.1]), so the SPLADE vectors keep their real number of terms. BM25 vectors (the
third branch, IDF modifier) come from ``Bm25Encoder`` over the same documents' texts.
Queries are the suite's test queries with their cached vectors.

Each configuration is built in a child process and searched in another, so each peak
RSS (``ru_maxrss``) is that step's alone: the search figure is what a process that opens
the collection and serves queries holds. Build = writing the points with the storage
backend (vectors in hand, batches of 1,024) + Edge's index build (``optimize``). Search
= ``HybridRetriever.invoke`` with the query vectors looked up (storage search + fusion +
payloads of the top 10; no encoding), with and without a payload filter matching 10% of
the points, and with that filter again once the field has a payload index (made by
Edge's ``create_field_index``; the library does not make payload indexes). Each branch
is also timed alone (one ``storage.search`` call; ``--no-profile`` skips it).
Not run by CI; the machine's load (``uptime``) is recorded with every row.

    python benchmarks/scale.py --sizes 100000 300000 --options default int8 binary on_disk
    python benchmarks/scale.py --sizes 1000000 --options default int8 --keep
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path("/tmp/fusion_study_cache")
DATA = Path("../shared/data")
CORPORA = ("scifact", "nfcorpus", "cacm", "cisi", "medline", "npl")
POOL = Path("/tmp/hybrid-retriever-scale-pool.npz")
OUT = Path("benchmarks/results/scale_million.json")
"""(``scale.json``, the 10k-100k table of both engines in ``speed.md``, came from this
script's earlier version: see its git history.)"""
FILTER_GROUPS = 10
"""Points carry ``metadata.group = i % 10``; the filtered search keeps group 3 (10%)."""

OPTIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "int8": {"quantization": "int8"},
    "binary": {"quantization": "binary", "oversampling": 3.0},
    "on_disk": {"dense_on_disk": True, "hnsw_on_disk": True},
    "int8_on_disk": {"quantization": "int8", "dense_on_disk": True, "hnsw_on_disk": True},
}


# -- the pool of real vectors ------------------------------------------------------------


def build_pool(data: Path) -> None:
    """Documents' and queries' cached vectors of every corpus, BM25 vectors encoded from
    the texts, in one file (so each child process loads it in a second)."""
    import scipy.sparse as sp

    from hybrid_retriever.encoders.bm25 import Bm25Encoder
    from hybrid_retriever.evaluation import beir_corpus, beir_queries

    bm25 = Bm25Encoder()
    dense, splade, bm25_docs, q_dense, q_splade, q_texts = [], [], [], [], [], []
    for corpus in CORPORA:
        ids = json.loads((CACHE / corpus / "ids.json").read_text())
        texts = {str(d.id): d.page_content for d in beir_corpus(data / corpus)}
        queries = beir_queries(data / corpus)
        dense.append(np.load(CACHE / corpus / "doc_dense.npy"))
        splade.append(sp.load_npz(CACHE / corpus / "doc_sparse.npz").tocsr())
        bm25_docs.append(_csr(bm25.encode_documents([texts[i] for i in ids["docs"]])))
        q_dense.append(np.load(CACHE / corpus / "query_dense.npy"))
        q_splade.append(sp.load_npz(CACHE / corpus / "query_sparse.npz").tocsr())
        q_texts.extend(queries[q] for q in ids["queries"])
    arrays: dict[str, Any] = {"dense": np.vstack(dense), "q_dense": np.vstack(q_dense)}
    for name, parts in (("splade", splade), ("bm25", bm25_docs), ("q_splade", q_splade)):
        arrays[f"{name}_data"] = np.concatenate([m.data for m in parts])
        arrays[f"{name}_indices"] = np.concatenate([m.indices.astype(np.int64) for m in parts])
        ends = np.cumsum([0, *(m.indptr[-1] for m in parts)])
        arrays[f"{name}_indptr"] = np.concatenate(
            [[0], *(m.indptr[1:] + end for m, end in zip(parts, ends, strict=False))]
        )
    arrays["q_texts"] = np.array(q_texts, dtype=object)
    np.savez(POOL, **arrays, allow_pickle=True)


def _csr(vectors: Sequence[Any]) -> Any:
    import scipy.sparse as sp

    indptr = np.cumsum([0, *(len(v.indices) for v in vectors)])
    indices = np.concatenate([np.asarray(v.indices, dtype=np.int64) for v in vectors])
    values = np.concatenate([np.asarray(v.values, dtype=np.float32) for v in vectors])
    return sp.csr_matrix((values, indices, indptr), shape=(len(vectors), int(indices.max()) + 1))


class Pool:
    def __init__(self) -> None:
        z = np.load(POOL, allow_pickle=True)
        self.dense = z["dense"].astype(np.float32)
        self.q_dense = z["q_dense"].astype(np.float32)
        self.sparse = {
            n: (z[f"{n}_data"], z[f"{n}_indices"], z[f"{n}_indptr"])
            for n in ("splade", "bm25", "q_splade")
        }
        self.q_texts = [str(t) for t in z["q_texts"]]

    def row(self, name: str, i: int, rng: np.random.Generator | None = None) -> Any:
        """Row ``i`` of a sparse matrix; with ``rng``, each weight scaled by 0.9..1.1."""
        from hybrid_retriever.vectors import SparseVector

        data, indices, indptr = self.sparse[name]
        lo, hi = indptr[i], indptr[i + 1]
        values = data[lo:hi] if rng is None else data[lo:hi] * rng.uniform(0.9, 1.1, hi - lo)
        return SparseVector(indices=indices[lo:hi].tolist(), values=values.tolist())

    def points(self, start: int, stop: int) -> list[Any]:
        """Points ``start``..``stop``: the pool's vectors, perturbed beyond its first copy."""
        from hybrid_retriever.storage.base import StoredPoint

        n = len(self.dense)
        rng = np.random.default_rng(start)
        rows = np.arange(start, stop) % n
        dense = self.dense[rows]
        noisy = np.arange(start, stop) >= n
        dense[noisy] += rng.normal(0.0, 0.01, dense[noisy].shape).astype(np.float32)
        dense /= np.linalg.norm(dense, axis=1, keepdims=True)
        points = []
        for offset, (i, row) in enumerate(zip(range(start, stop), rows, strict=True)):
            points.append(
                StoredPoint(
                    id=str(uuid.UUID(int=i + 1)),
                    vectors={
                        "dense": dense[offset].tolist(),
                        "sparse": self.row("splade", int(row), rng if noisy[offset] else None),
                        "bm25": self.row("bm25", int(row)),
                    },
                    payload={
                        "page_content": f"synthetic {i}",
                        "metadata": {"replica_of": int(row), "group": i % FILTER_GROUPS},
                    },
                )
            )
        return points


# -- the retriever over looked-up query vectors -----------------------------------------


def retriever(path: Path, pool: Pool, storage: dict[str, Any] | None) -> Any:
    from hybrid_retriever import Bm25Encoder, HybridRetriever, VectorStorage
    from hybrid_retriever.encoders.base import DenseEncoder, SparseEncoder

    by_text = {t: i for i, t in enumerate(pool.q_texts)}

    class LookupDense(DenseEncoder):
        name = "all-MiniLM-L6-v2 (precomputed)"  # type: ignore[assignment]
        dimension = 384  # type: ignore[assignment]

        def encode_documents(self, texts: Sequence[str]) -> list[list[float]]:
            return [pool.dense[0].tolist() for _ in texts]

        def encode_query(self, text: str) -> list[float]:
            return pool.q_dense[by_text[text]].tolist()

        def probe_vectors(self, texts: Sequence[str]) -> list[list[float]]:
            return [pool.dense[i].tolist() for i in range(len(texts))]

    class LookupSparse(SparseEncoder):
        name = "splade (precomputed)"  # type: ignore[assignment]

        def encode_documents(self, texts: Sequence[str]) -> list[Any]:
            return [pool.row("splade", 0) for _ in texts]

        def encode_query(self, text: str) -> Any:
            return pool.row("q_splade", by_text[text])

        def probe_vectors(self, texts: Sequence[str]) -> list[Any]:
            return [pool.row("splade", i) for i in range(len(texts))]

    return HybridRetriever(
        collection_name="scale",
        path=str(path),
        dense_encoder=LookupDense(),
        sparse_encoder=LookupSparse(),
        bm25_encoder=Bm25Encoder(),
        vector_storage=VectorStorage(**storage) if storage is not None else None,
        k=10,
    )


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child_build(path: Path, size: int, option: str) -> dict[str, Any]:
    from langchain_core.documents import Document

    pool = Pool()
    r = retriever(path, pool, OPTIONS[option])
    r.add_documents([Document("synthetic 0", id=str(uuid.UUID(int=1)))], show_progress=False)
    start = time.perf_counter()
    for lo in range(1, size, 1024):
        r.storage.upsert("scale", pool.points(lo, min(size, lo + 1024)))
    written = time.perf_counter()
    r.storage.optimize("scale")
    done = time.perf_counter()
    count = r.count()
    r.close()
    if count != size:
        raise RuntimeError(f"expected {size} points, found {count}")
    return {
        "write_seconds": round(written - start, 1),
        "optimize_seconds": round(done - written, 1),
        "build_seconds": round(done - start, 1),
        "build_peak_rss_mb": peak_rss_mb(),
    }


def child_search(path: Path, queries: int, profile: bool) -> dict[str, Any]:
    from qdrant_client import models

    from hybrid_retriever.storage.base import BranchQuery

    pool = Pool()
    r = retriever(path, pool, None)  # reopened with no storage argument
    texts = pool.q_texts[:: max(1, len(pool.q_texts) // queries)][:queries]
    only = models.Filter(
        must=[models.FieldCondition(key="metadata.group", match=models.MatchValue(value=3))]
    )
    row: dict[str, Any] = {"queries": len(texts)}
    for label, kwargs in (
        ("", {}),
        ("filtered_", {"filter": only}),
        ("indexed_", {"filter": only}),
    ):
        if label == "indexed_":  # the same filter once the field has a payload index
            from qdrant_edge import PayloadSchemaType, UpdateOperation

            operation = UpdateOperation.create_field_index(
                "metadata.group", PayloadSchemaType.Integer
            )
            r.storage._shard("scale").update(operation)
        for text in texts[:20]:  # warm-up (fills the query-vector cache too)
            r.invoke(text, **kwargs)
        for text in texts:
            r.invoke(text, **kwargs)
        latencies = []
        for text in texts:
            start = time.perf_counter()
            docs = r.invoke(text, **kwargs)
            latencies.append((time.perf_counter() - start) * 1000)
            if kwargs and any(d.metadata["group"] != 3 for d in docs):
                raise RuntimeError("the filter let through a point it excludes")
        row[f"{label}search_ms_p50"] = round(statistics.median(latencies), 2)
        row[f"{label}search_ms_p95"] = round(float(np.percentile(latencies, 95)), 2)
    if profile:  # each branch alone, as the retriever asks for it (100 deep, no payload)
        from hybrid_retriever.vectors import SparseVector

        for branch in ("dense", "sparse", "bm25"):
            latencies = []
            for text in texts:
                if branch == "dense":
                    vector: Any = pool.q_dense[pool.q_texts.index(text)].tolist()
                elif branch == "sparse":
                    vector = pool.row("q_splade", pool.q_texts.index(text))
                else:
                    vector = r.bm25_encoder.encode_query(text)
                if isinstance(vector, SparseVector) and not vector.indices:
                    continue
                query = BranchQuery(branch, vector, limit=100, with_payload=False)
                start = time.perf_counter()
                r.storage.search("scale", [query], None)
                latencies.append((time.perf_counter() - start) * 1000)
            row[f"{branch}_only_ms_p50"] = round(statistics.median(latencies), 2)
        terms = [len(pool.row("q_splade", pool.q_texts.index(t)).indices) for t in texts]
        row["splade_query_terms_mean"] = round(float(np.mean(terms)), 1)
    r.close()
    row["search_peak_rss_mb"] = peak_rss_mb()
    return row


# -- the parent -------------------------------------------------------------------------


def load() -> str:
    return os.getloadavg().__repr__()


def run_child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{args}: {out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def disk_mb(path: Path) -> float:
    return round(sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| points | storage | search p50 / p95 (ms) | filtered p50 / p95 (ms) | filtered, field "
        "indexed, p50 / p95 (ms) | dense / SPLADE / "
        "BM25 alone p50 (ms) | search peak RSS (MB) | build peak RSS (MB) | disk (MB) | build "
        "(s): write + index | load (1/5/15 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        branches = (
            f"{r['dense_only_ms_p50']} / {r['sparse_only_ms_p50']} / {r['bm25_only_ms_p50']}"
            if "dense_only_ms_p50" in r
            else "-"
        )
        lines.append(
            f"| {r['points']:,} | {r['option']} | {r['search_ms_p50']} / {r['search_ms_p95']} "
            f"| {r['filtered_search_ms_p50']} / {r['filtered_search_ms_p95']} "
            f"| {r.get('indexed_search_ms_p50', '-')} / {r.get('indexed_search_ms_p95', '-')} "
            f"| {branches} "
            f"| {r['search_peak_rss_mb']:,} | {r['build_peak_rss_mb']:,} | {r['disk_mb']:,} "
            f"| {r['write_seconds']} + {r['optimize_seconds']} | {_load(r['load_during_search'])} |"
        )
    return "\n".join(lines)


def _load(text: str) -> str:
    return " / ".join(f"{float(x):.1f}" for x in text.strip("()").split(","))


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Bars per (size, storage): search p50 (unfiltered, filtered with a payload index)
    and the search process's peak RSS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['option']}\n{r['points']:,}" for r in rows]
    xs = np.arange(len(rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(rows)), 4.5))
    left.bar(xs - 0.2, [r["search_ms_p50"] for r in rows], 0.4, label="no filter")
    left.bar(
        xs + 0.2,
        [r.get("indexed_search_ms_p50", 0) for r in rows],
        0.4,
        label="filter, payload index",
    )
    left.axhline(10, color="grey", linestyle="--", linewidth=0.8)
    left.set_title("search p50 (ms)")
    left.legend()
    right.bar(xs, [r["search_peak_rss_mb"] for r in rows], 0.6)
    right.set_title("search process peak RSS (MB)")
    for axis in (left, right):
        axis.set_xticks(xs, labels, fontsize=8)
    loads = sorted({round(float(r["load_during_search"].strip("()").split(",")[0])) for r in rows})
    fig.suptitle(
        "Qdrant Edge, dense 384-d + SPLADE + BM25; shared 2-core machine, 1-min load "
        f"{loads[0]}-{loads[-1]}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_build":
        print(json.dumps(child_build(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4])))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_search":
        result = child_search(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1")
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the rows of --out not rerun")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    command = " ".join(["python", "benchmarks/scale.py", *sys.argv[1:]])
    if not POOL.is_file():
        build_pool(args.data)
    rows: list[dict[str, Any]] = []
    if args.keep and args.out.is_file():
        rows = json.loads(args.out.read_text())["results"]
    for size in args.sizes:
        for option in args.options:
            path = Path(tempfile.mkdtemp(prefix="hr-scale-", dir=args.workdir))
            try:
                load_before = load()
                built = run_child(["_build", str(path), str(size), option])
                searched = run_child(
                    ["_search", str(path), str(args.queries), "0" if args.no_profile else "1"]
                )
                row = {
                    "points": size,
                    "option": option,
                    "vector_storage": OPTIONS[option],
                    **searched,
                    **built,
                    "disk_mb": disk_mb(path),
                    "load_during_build": load_before,
                    "load_during_search": load(),
                    "command": command,
                }
            finally:
                shutil.rmtree(path, ignore_errors=True)
            print(json.dumps(row), flush=True)
            rows = [r for r in rows if (r["points"], r["option"]) != (size, option)] + [row]
            rows.sort(key=lambda r: (r["points"], list(OPTIONS).index(r["option"])))
            write(args.out, rows, command)


def write(out: Path, rows: list[dict[str, Any]], command: str) -> None:
    from hybrid_retriever.machine import machine_info

    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"command": command, "machine": machine_info(), "results": rows}
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(rows) + "\n")
    try:
        plot(rows, out.with_suffix(".png"))
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)


if __name__ == "__main__":
    main()
