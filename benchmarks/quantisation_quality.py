"""nDCG@10 cost of each dense-vector quantisation, per corpus of the suite.

For each corpus the study's cached vectors (``/tmp/fusion_study_cache/<corpus>/``,
read-only; no re-encoding) go into Qdrant Edge collections, one per ``VectorStorage``
option; the test queries are searched with their cached vectors through
``EdgeStorage.search`` (so with the search-time settings the collection keeps: rescore,
oversampling), 100 deep per branch, and fused by the library's default
(``DEFAULT_FUSION_CONFIG.fuse`` with the query text); nDCG@10 by the evaluation code.

Quantisation only touches the dense branch, so the SPLADE and BM25 branches are searched
once. Edge builds the HNSW index and the quantised copy only for segments past its
indexing threshold (about 20 MB of vectors, more than any suite corpus), so the
collections here are created with a 1 KB threshold: the quantised search is then used
as it is at a million points. Rows for two branches (dense + SPLADE) and for three
(+ BM25, IDF modifier: the coming default). Not run by CI.

    python benchmarks/quantisation_quality.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_retriever.collection import CollectionSpec, Distance
from hybrid_retriever.encoders.bm25 import Bm25Encoder
from hybrid_retriever.evaluation import beir_corpus, beir_qrels, beir_queries, score_run
from hybrid_retriever.fusion.config import DEFAULT_FUSION_CONFIG
from hybrid_retriever.storage.base import BranchQuery, StoredPoint
from hybrid_retriever.storage.edge import EdgeStorage
from hybrid_retriever.vector_storage import VectorStorage
from hybrid_retriever.vectors import SparseVector

CACHE = Path("/tmp/fusion_study_cache")
CORPORA = ("scifact", "nfcorpus", "cacm", "cisi", "medline", "npl")
DEPTH = 100
OPTIONS: dict[str, VectorStorage] = {
    "none": VectorStorage(),
    "int8": VectorStorage(quantization="int8"),  # type: ignore[arg-type]
    "int8_no_rescore": VectorStorage(quantization="int8", rescore=False),  # type: ignore[arg-type]
    "binary": VectorStorage(quantization="binary"),  # type: ignore[arg-type]
    "binary_oversampling3": VectorStorage(quantization="binary", oversampling=3.0),  # type: ignore[arg-type]
    "binary_no_rescore": VectorStorage(quantization="binary", rescore=False),  # type: ignore[arg-type]
}


def _sparse_rows(matrix: Any) -> list[SparseVector]:
    matrix = matrix.tocsr()
    return [
        SparseVector(
            indices=matrix.indices[matrix.indptr[i] : matrix.indptr[i + 1]].tolist(),
            values=matrix.data[matrix.indptr[i] : matrix.indptr[i + 1]].tolist(),
        )
        for i in range(matrix.shape[0])
    ]


def create(storage: EdgeStorage, name: str, option: VectorStorage) -> None:
    """``EdgeStorage.create_collection``, with a low indexing threshold (see docstring)."""
    import qdrant_edge as edge

    from hybrid_retriever.storage.edge import _edge_storage_params

    spec = CollectionSpec(name, "dense", 384, Distance.COSINE, "sparse", "bm25", storage=option)
    storage.create_collection(spec)
    storage.close()
    folder = storage.root / name
    config = edge.EdgeConfig(
        vectors={
            "dense": edge.EdgeVectorParams(
                size=384, distance=edge.Distance.Cosine, **_edge_storage_params(option)
            )
        },
        sparse_vectors={
            "sparse": edge.EdgeSparseVectorParams(),
            "bm25": edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf),
        },
        optimizers=edge.EdgeOptimizersConfig(indexing_threshold=1),
    )
    edge.EdgeShard.load(str(folder), config).close()


def branch_lists(
    storage: EdgeStorage, name: str, branch: str, queries: list[Any]
) -> list[list[Any]]:
    results = []
    for vector in queries:
        if isinstance(vector, SparseVector) and not vector.indices:
            results.append([])
            continue
        query = BranchQuery(branch, vector, limit=DEPTH, with_payload=False)
        results.append(storage.search(name, [query], None)[0])
    return results


def measure(corpus: str, data: Path, workdir: Path) -> dict[str, Any]:
    import scipy.sparse as sp

    cache = CACHE / corpus
    ids = json.loads((cache / "ids.json").read_text())
    doc_ids: list[str] = ids["docs"]
    texts = {str(d.id): d.page_content for d in beir_corpus(data / corpus)}
    queries = beir_queries(data / corpus)
    qrels = beir_qrels(data / corpus, "test")
    query_texts = [queries[q] for q in ids["queries"]]
    dense = np.load(cache / "doc_dense.npy")
    q_dense = np.load(cache / "query_dense.npy")
    splade = _sparse_rows(sp.load_npz(cache / "doc_sparse.npz"))
    q_splade = _sparse_rows(sp.load_npz(cache / "query_sparse.npz"))
    bm25 = Bm25Encoder()
    bm25_docs = bm25.encode_documents([texts[i] for i in doc_ids])
    q_bm25 = [bm25.encode_query(t) for t in query_texts]
    point_ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, d)) for d in doc_ids]
    back = dict(zip(point_ids, doc_ids, strict=True))

    storage = EdgeStorage(workdir / corpus)
    lists: dict[str, dict[str, list[list[Any]]]] = {}
    seconds: dict[str, float] = {}
    for option_name, option in OPTIONS.items():
        name = f"q-{option_name}"
        create(storage, name, option)
        with_sparse = option_name == "none"  # the sparse branches do not depend on it
        for lo in range(0, len(doc_ids), 1024):
            storage.upsert(
                name,
                [
                    StoredPoint(
                        id=point_ids[i],
                        vectors={"dense": dense[i].tolist()}
                        | ({"sparse": splade[i], "bm25": bm25_docs[i]} if with_sparse else {}),
                        payload={},
                    )
                    for i in range(lo, min(lo + 1024, len(doc_ids)))
                ],
            )
        storage.optimize(name)
        start = time.perf_counter()
        lists[option_name] = {"dense": branch_lists(storage, name, "dense", list(q_dense))}
        seconds[option_name] = round((time.perf_counter() - start) / len(q_dense) * 1000, 3)
        if with_sparse:
            lists["sparse"] = {
                "sparse": branch_lists(storage, name, "sparse", q_splade),
                "bm25": branch_lists(storage, name, "bm25", q_bm25),
            }
    storage.close()

    row: dict[str, Any] = {"corpus": corpus, "docs": len(doc_ids), "queries": len(query_texts)}
    for option_name in OPTIONS:
        for label, branches in (
            ("two", ("dense", "sparse")),
            ("three", ("dense", "sparse", "bm25")),
        ):
            ranking = {}
            for qi, (query_id, text) in enumerate(zip(ids["queries"], query_texts, strict=True)):
                rankings = {
                    "dense": lists[option_name]["dense"][qi],
                    **{b: lists["sparse"][b][qi] for b in branches if b != "dense"},
                }
                fused = DEFAULT_FUSION_CONFIG.fuse(rankings, query=text, limit=10)
                ranking[query_id] = {back[h.id]: h.score for h in fused}
            ndcg = score_run(qrels, ranking, ["ndcg@10"])["ndcg@10"]
            row[f"{label}_{option_name}"] = round(ndcg, 4)
        row[f"dense_ms_{option_name}"] = seconds[option_name]
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    options = [o for o in OPTIONS if o != "none"]
    lines = []
    for label, title in (("three", "dense + SPLADE + BM25"), ("two", "dense + SPLADE")):
        lines += [
            f"nDCG@10, {title}, default fusion; change from no quantisation in brackets",
            "",
            "| corpus | none | " + " | ".join(options) + " |",
            "|---|---|" + "---|" * len(options),
        ]
        for r in rows:
            base = r[f"{label}_none"]
            cells = [f"{r[f'{label}_{o}']:.4f} ({r[f'{label}_{o}'] - base:+.4f})" for o in options]
            lines.append(f"| {r['corpus']} | {base:.4f} | " + " | ".join(cells) + " |")
        means = {o: float(np.mean([r[f"{label}_{o}"] for r in rows])) for o in OPTIONS}
        cells = [f"{means[o]:.4f} ({means[o] - means['none']:+.4f})" for o in options]
        lines += [f"| mean | {means['none']:.4f} | " + " | ".join(cells) + " |", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA))
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/quantisation_quality.json")
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hr-quant-") as workdir:
        for corpus in args.corpora:
            row = measure(corpus, args.data, Path(workdir))
            print(json.dumps(row), flush=True)
            rows.append(row)
    report = {
        "command": " ".join(["python", "benchmarks/quantisation_quality.py", *sys.argv[1:]]),
        "options": {k: v.as_dict() for k, v in OPTIONS.items()},
        "results": rows,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rows) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
