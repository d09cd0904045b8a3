"""Search latency and ingestion rate at 10k / 50k / 100k points, per embedded engine.

Vectors come from the real default models: a sample of SciFact documents and
queries is encoded once (cached under --cache), then the document vectors are
replicated with small perturbations up to each size (dense: Gaussian noise,
sigma 0.01, renormalised; sparse: each weight scaled by a factor in [0.9, 1.1]).
Everything goes through the project's own API (``HybridRetriever.add_documents``
and ``invoke``); the encoders are replaced by lookups of those precomputed
vectors, so encoding time is excluded (it is measured by benchmarks/encoding.py).

Search latency is ``invoke`` end to end minus encoding: validation, the one
batched Qdrant request (dense + sparse, prefetch 100 each), RRF and building the
Documents. Ingestion time includes Edge's index build (``optimize``). Not run by CI.

    python benchmarks/scale.py --data ../shared/data/scifact
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from hybrid_retriever import HybridRetriever
from hybrid_retriever.encoders.base import DenseEncoder, SparseEncoder
from hybrid_retriever.evaluation import beir_corpus, beir_queries
from hybrid_retriever.machine import machine_info
from hybrid_retriever.vectors import SparseVector

PREFIX = "synthetic-"


class ReplicatedVectors:
    """The sample's real vectors, replicated with deterministic perturbations."""

    def __init__(self, dense: np.ndarray, sparse: list[SparseVector], seed: int = 0) -> None:
        self.dense = dense
        self.sparse = sparse
        self.seed = seed

    def dense_of(self, index: int) -> list[float]:
        base = self.dense[index % len(self.dense)]
        if index < len(self.dense):
            return [float(x) for x in base]
        noise = np.random.default_rng((self.seed, index)).normal(0.0, 0.01, base.shape)
        vector = base + noise
        return [float(x) for x in vector / np.linalg.norm(vector)]

    def sparse_of(self, index: int) -> SparseVector:
        base = self.sparse[index % len(self.sparse)]
        if index < len(self.sparse):
            return base
        scale = np.random.default_rng((self.seed, index, 1)).uniform(0.9, 1.1, len(base))
        return SparseVector(
            indices=base.indices,
            values=[float(v * s) for v, s in zip(base.values, scale, strict=True)],
        )


def _index(text: str) -> int:
    return int(text[len(PREFIX) :].split(" ", 1)[0])


class LookupDense(DenseEncoder):
    """Returns precomputed vectors: documents by their synthetic index, queries by text."""

    def __init__(self, vectors: ReplicatedVectors, queries: dict[str, list[float]]) -> None:
        self._vectors, self._queries = vectors, queries

    @property
    def name(self) -> str:
        return "all-MiniLM-L6-v2 (precomputed)"

    @property
    def dimension(self) -> int:
        return int(self._vectors.dense.shape[1])

    def encode_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vectors.dense_of(_index(t)) for t in texts]

    def encode_query(self, text: str) -> list[float]:
        return self._queries[text]

    def probe_vectors(self, texts: Sequence[str]) -> list[list[float]]:
        """The collection's model record: no model here, so the sample's first vectors."""
        return [self._vectors.dense_of(i) for i in range(len(texts))]


class LookupSparse(SparseEncoder):
    def __init__(self, vectors: ReplicatedVectors, queries: dict[str, SparseVector]) -> None:
        self._vectors, self._queries = vectors, queries

    @property
    def name(self) -> str:
        return "splade-tiny (precomputed)"

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        return [self._vectors.sparse_of(_index(t)) for t in texts]

    def encode_query(self, text: str) -> SparseVector:
        return self._queries[text]

    def probe_vectors(self, texts: Sequence[str]) -> list[SparseVector]:
        return [self._vectors.sparse_of(i) for i in range(len(texts))]


def encode_sample(data: Path, n_docs: int, n_queries: int, cache: Path) -> dict[str, object]:
    """Real vectors for a sample of documents and queries, cached between runs."""
    if cache.is_file():
        return dict(np.load(cache, allow_pickle=True).item())
    from hybrid_retriever import SentenceTransformerEncoder, SpladeEncoder

    docs = list(itertools.islice(beir_corpus(data), n_docs))
    queries = list(beir_queries(data).values())[:n_queries]
    dense, sparse = SentenceTransformerEncoder(), SpladeEncoder()
    texts = [d.page_content for d in docs]
    sample = {
        "doc_titles": [d.metadata["title"] for d in docs],
        "dense": np.asarray(dense.encode_documents(texts), dtype=np.float32),
        "sparse": [(v.indices, v.values) for v in sparse.encode_documents(texts)],
        "queries": queries,
        "query_dense": [dense.encode_query(q) for q in queries],
        "query_sparse": [(v.indices, v.values) for v in map(sparse.encode_query, queries)],
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, np.array(sample, dtype=object), allow_pickle=True)
    return sample


def synthetic_documents(n: int, titles: Sequence[str]) -> Iterator[object]:
    from langchain_core.documents import Document

    for i in range(n):
        title = titles[i % len(titles)]
        yield Document(
            page_content=f"{PREFIX}{i} {title}", metadata={"replica_of": i % len(titles)}
        )


def measure(
    engine: str, size: int, sample: dict[str, object], n_queries: int, workdir: Path
) -> dict[str, object]:
    vectors = ReplicatedVectors(
        sample["dense"],  # type: ignore[arg-type]
        [SparseVector(list(i), list(v)) for i, v in sample["sparse"]],  # type: ignore[attr-defined]
    )
    queries: list[str] = list(sample["queries"])[:n_queries]  # type: ignore[call-overload]
    query_dense = dict(zip(queries, sample["query_dense"], strict=False))  # type: ignore[call-overload]
    query_sparse = {
        q: SparseVector(list(i), list(v))
        for q, (i, v) in zip(queries, sample["query_sparse"], strict=False)  # type: ignore[call-overload]
    }
    retriever = HybridRetriever(
        collection_name=f"scale-{size}",
        engine=engine,
        path=str(workdir / f"{engine}-{size}"),
        dense_encoder=LookupDense(vectors, query_dense),
        sparse_encoder=LookupSparse(vectors, query_sparse),
        k=10,
    )
    start = time.perf_counter()
    retriever.add_documents(
        synthetic_documents(size, sample["doc_titles"]),  # type: ignore[arg-type]
        batch_size=512,
        show_progress=False,
    )
    ingest_seconds = time.perf_counter() - start
    if retriever.count() != size:
        raise RuntimeError(f"expected {size} points, found {retriever.count()}")
    for query in queries[:5]:  # warm-up
        retriever.invoke(query)
    latencies = []
    for query in queries:
        start = time.perf_counter()
        retriever.invoke(query)
        latencies.append((time.perf_counter() - start) * 1000)
    retriever.close()
    return {
        "engine": engine,
        "points": size,
        "ingest_seconds": round(ingest_seconds, 2),
        "ingest_points_per_s": round(size / ingest_seconds, 1),
        "queries": len(latencies),
        "search_ms_p50": round(statistics.median(latencies), 3),
        "search_ms_p95": round(float(np.percentile(latencies, 95)), 3),
    }


def markdown(rows: list[dict[str, object]]) -> str:
    lines = [
        "| engine | points | search p50 (ms) | search p95 (ms) | ingest (points/s) | queries |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['engine']} | {r['points']:,} | {r['search_ms_p50']} | {r['search_ms_p95']} "
            f"| {r['ingest_points_per_s']:,} | {r['queries']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--engines", nargs="+", default=["edge", "qdrant-client"])
    parser.add_argument("--sample-docs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--qdrant-client-queries",
        type=int,
        default=20,
        help="queries for qdrant-client embedded, which takes seconds per query at scale",
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/hybrid-retriever-scale.npy"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scale.json"))
    parser.add_argument(
        "--keep-other-engines",
        action="store_true",
        help="keep the rows of engines not measured now from the existing --out file "
        "(each row records the command that measured it)",
    )
    args = parser.parse_args()
    command = " ".join(["python", "benchmarks/scale.py", *sys.argv[1:]])

    sample = encode_sample(args.data, args.sample_docs, args.queries, args.cache)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hybrid-retriever-scale-") as workdir:
        for size in args.sizes:
            for engine in args.engines:
                n = args.queries if engine == "edge" else args.qdrant_client_queries
                row = {**measure(engine, size, sample, n, Path(workdir)), "command": command}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.keep_other_engines and args.out.is_file():
        earlier = json.loads(args.out.read_text())
        kept = [
            {"command": earlier.get("command"), **row}
            for row in earlier["results"]
            if row["engine"] not in args.engines
        ]
        rows = sorted([*rows, *kept], key=lambda r: (r["points"], r["engine"] != "edge"))
    report = {"command": command, "machine": machine_info(), "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rows) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
