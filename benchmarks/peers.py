"""hybrid_retriever against the usual LangChain ways of doing hybrid search, side by side.

Same data (BEIR SciFact: corpus, test queries, qrels), same models, one run:

* ``hybrid-retriever``: our HybridRetriever on Qdrant Edge (the embedded default),
  all-MiniLM-L6-v2 + splade-tiny, default fusion (``fusion/config.py``);
* ``langchain-qdrant``: ``QdrantVectorStore`` in ``RetrievalMode.HYBRID`` with the same
  two models (a sentence-transformers ``Embeddings`` and a ``SparseEmbeddings`` over the
  same SPLADE model), on its default embedded client (``location=":memory:"``);
* ``bm25-ensemble``: LangChain's ``EnsembleRetriever`` (weighted RRF, c=60) of
  ``BM25Retriever`` (rank_bm25; lower-cased word tokens, since the default splits on
  whitespace only) and the same dense model in a ``QdrantVectorStore`` (``:memory:``).

Reported per system: nDCG@10, Recall@100 and MRR@10 (ranx) over the top 100 of each
query; ingestion rate (docs/s, models loaded beforehand, so it measures encoding and
writing); query latency p50 / p95 (one query at a time, k=100, encoding included); peak
RSS. Each system runs in its own subprocess, so peak RSS is its own. Not part of CI.

    python benchmarks/peers.py --data ../shared/data/scifact
    python benchmarks/peers.py --limit-queries 30        # a quick check on a subset

Writes ``benchmarks/results/peers.json`` and ``peers.md`` (``--out-dir`` to change);
``python benchmarks/update_readme.py`` then puts the table into docs/peers.md.
Needs ``pip install -e ".[peers]"``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from update_readme import peers_table

DEPTH = 100
METRICS = ("ndcg@10", "recall@100", "mrr@10")


@dataclass(frozen=True)
class System:
    label: str
    description: str
    build: Callable[[list[Any]], Any]
    """Index the documents; return something with ``invoke(query) -> list[Document]``."""


# -- the models, wrapped for LangChain ------------------------------------------------------------


def _dense_embeddings() -> Any:
    """A LangChain Embeddings over the same sentence-transformers model we use."""
    from langchain_core.embeddings import Embeddings
    from sentence_transformers import SentenceTransformer

    from hybrid_retriever.model_catalog import DEFAULT_DENSE_MODEL, resolve_model

    class SentenceTransformerEmbeddings(Embeddings):
        def __init__(self) -> None:
            self.model = SentenceTransformer(resolve_model(DEFAULT_DENSE_MODEL), device="cpu")

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            vectors = self.model.encode_document(texts, batch_size=32, show_progress_bar=False)
            return [[float(x) for x in row] for row in vectors]

        def embed_query(self, text: str) -> list[float]:
            vector = self.model.encode_query([text], show_progress_bar=False)[0]
            return [float(x) for x in vector]

    return SentenceTransformerEmbeddings()


def _sparse_embeddings() -> Any:
    """A langchain-qdrant SparseEmbeddings over the same SPLADE model we use."""
    import torch
    from langchain_qdrant import SparseEmbeddings, SparseVector
    from sentence_transformers import SparseEncoder

    from hybrid_retriever.model_catalog import DEFAULT_SPARSE_MODEL, resolve_model

    def rows(matrix: torch.Tensor) -> list[SparseVector]:
        out = []
        for row in matrix:
            indices = torch.nonzero(row, as_tuple=True)[0]
            out.append(SparseVector(indices=indices.tolist(), values=row[indices].float().tolist()))
        return out

    class SpladeSparseEmbeddings(SparseEmbeddings):
        def __init__(self) -> None:
            self.model = SparseEncoder(resolve_model(DEFAULT_SPARSE_MODEL), device="cpu")

        def embed_documents(self, texts: list[str]) -> list[SparseVector]:
            matrix = self.model.encode_document(
                texts,
                batch_size=32,
                convert_to_tensor=True,
                convert_to_sparse_tensor=False,
                show_progress_bar=False,
            )
            return rows(matrix)

        def embed_query(self, text: str) -> SparseVector:
            matrix = self.model.encode_query(
                [text],
                convert_to_tensor=True,
                convert_to_sparse_tensor=False,
                show_progress_bar=False,
            )
            return rows(matrix)[0]

    return SpladeSparseEmbeddings()


def _without_ids(documents: list[Any]) -> list[Any]:
    """Qdrant point ids must be UUIDs or integers; BEIR ids stay in the metadata."""
    from langchain_core.documents import Document

    return [Document(page_content=d.page_content, metadata=d.metadata) for d in documents]


# -- the systems ----------------------------------------------------------------------------------


def build_ours(documents: list[Any]) -> Any:
    from hybrid_retriever import HybridRetriever

    retriever = HybridRetriever(collection_name="peers", k=DEPTH)
    retriever.dense_encoder.encode_query("warm-up")  # load the models before timing
    retriever.sparse_encoder.encode_query("warm-up")
    with _timed("ingest_seconds"):
        retriever.add_documents(documents, show_progress=False)
    return retriever


def build_langchain_qdrant(documents: list[Any]) -> Any:
    from langchain_qdrant import QdrantVectorStore, RetrievalMode

    dense, sparse = _dense_embeddings(), _sparse_embeddings()
    dense.embed_query("warm-up")
    sparse.embed_query("warm-up")
    with _timed("ingest_seconds"):
        store = QdrantVectorStore.from_documents(
            _without_ids(documents),
            embedding=dense,
            sparse_embedding=sparse,
            retrieval_mode=RetrievalMode.HYBRID,
            location=":memory:",
            collection_name="peers",
            batch_size=64,
        )
    return store.as_retriever(search_kwargs={"k": DEPTH})


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def build_bm25_ensemble(documents: list[Any]) -> Any:
    from langchain_community.retrievers import BM25Retriever
    from langchain_qdrant import QdrantVectorStore, RetrievalMode

    try:
        from langchain_classic.retrievers import EnsembleRetriever
    except ImportError:  # langchain < 1.0
        from langchain.retrievers import (  # type: ignore[import-not-found,no-redef]
            EnsembleRetriever,
        )

    dense = _dense_embeddings()
    dense.embed_query("warm-up")
    with _timed("ingest_seconds"):
        bm25 = BM25Retriever.from_documents(
            _without_ids(documents), k=DEPTH, preprocess_func=_tokens
        )
        store = QdrantVectorStore.from_documents(
            _without_ids(documents),
            embedding=dense,
            retrieval_mode=RetrievalMode.DENSE,
            location=":memory:",
            collection_name="peers",
            batch_size=64,
        )
    return EnsembleRetriever(
        retrievers=[bm25, store.as_retriever(search_kwargs={"k": DEPTH})],
        weights=[0.5, 0.5],
        id_key="doc_id",
    )


#: What each system imports beyond the package itself (the ``peers`` extra): checked before
#: any system runs, so that a missing one stops the run at once, not after the others.
NEEDS: dict[str, tuple[str, ...]] = {
    "hybrid-retriever": (),
    "langchain-qdrant": ("langchain_qdrant",),
    "bm25-ensemble": ("langchain_community", "langchain_classic", "rank_bm25", "langchain_qdrant"),
}

SYSTEMS: dict[str, System] = {
    "hybrid-retriever": System(
        "hybrid_retriever (Qdrant Edge)",
        "HybridRetriever, all-MiniLM-L6-v2 + splade-tiny, default fusion, embedded Qdrant Edge",
        build_ours,
    ),
    "langchain-qdrant": System(
        "langchain-qdrant HYBRID (:memory:)",
        "QdrantVectorStore RetrievalMode.HYBRID, same two models, fused by Qdrant's own RRF "
        "(its default k), qdrant-client embedded :memory:",
        build_langchain_qdrant,
    ),
    "bm25-ensemble": System(
        "EnsembleRetriever BM25 + dense",
        "EnsembleRetriever (RRF c=60) of BM25Retriever (rank_bm25) and all-MiniLM-L6-v2 "
        "in QdrantVectorStore :memory:",
        build_bm25_ensemble,
    ),
}

_timings: dict[str, float] = {}


class _timed:
    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        _timings[self.name] = time.perf_counter() - self.start


# -- one system, in its own process ---------------------------------------------------------------


def worker(system: str, data: Path, out: Path) -> None:
    """Index, query, record; scoring happens in the parent so ranx's memory is not counted."""
    from hybrid_retriever.evaluation import DOC_ID_KEY, beir_corpus, beir_qrels, beir_queries

    documents = list(beir_corpus(data))
    qrels = beir_qrels(data, "test")
    queries = {q: text for q, text in beir_queries(data).items() if q in qrels}
    start = time.perf_counter()
    retriever = SYSTEMS[system].build(documents)
    setup_seconds = time.perf_counter() - start
    rankings: dict[str, list[str]] = {}
    latencies: list[float] = []
    for query_id, text in queries.items():
        start = time.perf_counter()
        found = retriever.invoke(text)
        latencies.append((time.perf_counter() - start) * 1000)
        rankings[query_id] = [str(d.metadata.get(DOC_ID_KEY, d.id)) for d in found][:DEPTH]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    out.write_text(
        json.dumps(
            {
                "system": system,
                "num_docs": len(documents),
                "ingest_seconds": _timings["ingest_seconds"],
                "setup_seconds": setup_seconds,
                "latencies_ms": latencies,
                "rankings": rankings,
                "peak_rss_mb": peak_kib / 1024,
            }
        )
    )


# -- the parent -----------------------------------------------------------------------------------


def subset(data: Path, limit_docs: int | None, limit_queries: int | None, folder: Path) -> Path:
    """A BEIR copy with the first ``limit_queries`` test queries and ``limit_docs`` documents.

    Every document judged for a kept query is kept, even beyond ``limit_docs``, so the
    smaller corpus still contains all the answers.
    """
    from hybrid_retriever.evaluation import beir_qrels, read_jsonl

    qrels = beir_qrels(data, "test")
    kept_queries = list(qrels)[:limit_queries] if limit_queries else list(qrels)
    kept = set(kept_queries)
    needed = {d for q in kept_queries for d in qrels[q]}
    extra = None if limit_docs is None else max(0, limit_docs - len(needed))
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for record in read_jsonl(data / "corpus.jsonl"):
            if str(record["_id"]) not in needed:
                if extra is not None and extra <= 0:
                    continue
                if extra is not None:
                    extra -= 1
            out.write(json.dumps(record) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as out:
        for record in read_jsonl(data / "queries.jsonl"):
            if str(record["_id"]) in kept:
                out.write(json.dumps(record) + "\n")
    with (folder / "qrels" / "test.tsv").open("w", encoding="utf-8") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for q in kept_queries:
            for d, grade in qrels[q].items():
                out.write(f"{q}\t{d}\t{grade}\n")
    return folder


def summarise(raw: dict[str, Any], qrels: dict[str, dict[str, int]]) -> dict[str, Any]:
    from hybrid_retriever.evaluation import percentile, score_run

    ranking = {
        q: {d: -float(rank) for rank, d in enumerate(ids, start=1)}
        for q, ids in raw["rankings"].items()
    }
    system = SYSTEMS[raw["system"]]
    return {
        "label": system.label,
        "description": system.description,
        **score_run(qrels, ranking, METRICS),
        "ingest_seconds": raw["ingest_seconds"],
        "ingest_docs_per_s": raw["num_docs"] / raw["ingest_seconds"],
        "query_ms_p50": percentile(raw["latencies_ms"], 50),
        "query_ms_p95": percentile(raw["latencies_ms"], 95),
        "peak_rss_mb": raw["peak_rss_mb"],
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--limit-docs", type=int, metavar="N", help="at most N documents")
    parser.add_argument("--limit-queries", type=int, metavar="N", help="the first N queries")
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help=f"comma-separated, among {list(SYSTEMS)}"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.data, args.worker_out)
        return

    from hybrid_retriever.evaluation import beir_qrels
    from hybrid_retriever.machine import machine_info

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; choose among {list(SYSTEMS)}")
    missing = sorted({m for s in systems for m in NEEDS[s] if importlib.util.find_spec(m) is None})
    if missing:
        parser.error(f"missing modules {missing}: pip install -e '.[peers]'")
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    with tempfile.TemporaryDirectory(prefix="peers-") as scratch:
        data = args.data
        if args.limit_docs or args.limit_queries:
            data = subset(args.data, args.limit_docs, args.limit_queries, Path(scratch) / "data")
        qrels = beir_qrels(data, "test")
        results: dict[str, Any] = {}
        num_docs = 0
        worker_command = [sys.executable, __file__, "--worker"]
        for name in systems:
            out = Path(scratch) / f"{name}.json"
            print(f"== {name}", flush=True)
            subprocess.run(
                [*worker_command, name, "--data", str(data), "--worker-out", str(out)],
                check=True,
                env=env,
            )
            raw = json.loads(out.read_text())
            num_docs = raw["num_docs"]
            results[name] = summarise(raw, qrels)
            print(json.dumps(results[name]), flush=True)
    report = {
        "dataset": args.data.resolve().name,
        "split": "test",
        "num_docs": num_docs,
        "num_queries": len(qrels),
        "limit_docs": args.limit_docs,
        "limit_queries": args.limit_queries,
        "depth": DEPTH,
        "command": " ".join(["python", "benchmarks/peers.py", *sys.argv[1:]]),
        "machine": machine_info(),
        "systems": results,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "peers.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out_dir / "peers.md").write_text(peers_markdown(report))
    print(f"wrote {args.out_dir / 'peers.json'} and {args.out_dir / 'peers.md'}")


def peers_markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"# Hybrid search peers on {report['dataset']}",
        "",
        f"{report['num_docs']} documents, {report['num_queries']} test queries, "
        f"top {report['depth']} per query. Machine: {machine['cpu']}, {machine['cores']} cores, "
        f"torch {machine['torch']} ({machine['torch_threads']} threads). Ingestion excludes "
        "model loading; latency is one query at a time, encoding included; peak RSS is per "
        "system (each ran in its own process).",
        "",
        peers_table(report),
        "",
        "| system | what it is |",
        "|---|---|",
        *(f"| {s['label']} | {s['description']} |" for s in report["systems"].values()),
        "",
        f"Command: `{report['command']}`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
