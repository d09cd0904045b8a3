"""nDCG@10 of each encoder backend over the whole suite: does int8 cost quality?

For every BEIR corpus of ``--suite`` (test split), each backend of ``--backends``
encodes the corpus and the judged queries with the default models, through the
library's own encoders (``SentenceTransformerEncoder`` / ``SpladeEncoder`` with
``backend=``); each branch is searched exactly (brute force, as in
``fusion_study.py``, so that no HNSW approximation blurs the comparison), the top 100
of each branch fused by the default fusion (``FusionConfig.fuse``), and nDCG@10
reported for dense, SPLADE and hybrid. A mixed row, ``int8 queries on fp32
documents``, tells what a collection indexed in fp32 gets from int8 queries.

``--fusion`` then applies the fusion study's protocol (``fusion_study.py``: its
candidates, best worst-case lead over max(better branch, equal-weight convex), ties
within 0.001 by the mean, leave-one-corpus-out) to both backends' encodings together,
twelve rows, so that the default fusion holds for either; it writes
``<out>_fusion.json`` / ``.md``. The query-length slope of 0.05 is its choice.

``onnx`` (fp32) stands for PyTorch fp32: ``tests/test_onnx_backend.py`` holds the two
to a dense cosine of 0.999 and the same top-20 SPLADE terms (measured: within 1e-12
and 5e-6). Encodings are cached under ``--cache`` (not the repository), so a rerun
only scores. Not part of CI.

    python benchmarks/backend_quality.py --suite ../shared/data --cache /tmp/backend-quality \
        --out benchmarks/results/backend_quality.json --fusion
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fusion_study
from fusion_study import corpora, dense_scores, sparse_scores, to_csr, top_k, unit

from hybrid_retriever import SentenceTransformerEncoder, SpladeEncoder
from hybrid_retriever.evaluation import beir_corpus, beir_qrels, beir_queries, score_queries
from hybrid_retriever.fusion.config import DEFAULT_FUSION_CONFIG
from hybrid_retriever.fusion.rrf import BranchHit
from hybrid_retriever.machine import machine_info

METRIC = "ndcg@10"
DEPTH = 100
BRANCHES = ("dense", "sparse")


def encoded(folder: Path, cache: Path, backend: str) -> dict[Any, Any]:
    """Document and query vectors of one corpus under one backend (cached), and ids."""
    import scipy.sparse as sp

    cache.mkdir(parents=True, exist_ok=True)
    ids_path = cache / "ids.json"
    if not ids_path.exists():
        judged = beir_qrels(folder, "test")
        ids = {
            "docs": [str(d.id) for d in beir_corpus(folder)],
            "queries": [q for q in beir_queries(folder) if q in judged],
        }
        ids_path.write_text(json.dumps(ids))
    ids = json.loads(ids_path.read_text())
    encoders: dict[str, Any] = {
        "dense": SentenceTransformerEncoder(backend=backend),
        "sparse": SpladeEncoder(backend=backend),
    }
    vectors: dict[Any, Any] = {"ids": ids}
    for role in ("docs", "queries"):
        texts: list[str] | None = None
        for branch, encoder in encoders.items():
            path = cache / f"{backend}_{role}_{branch}.{'npy' if branch == 'dense' else 'npz'}"
            if not path.exists():
                if texts is None:
                    texts = _texts(folder, ids, role)
                start = time.perf_counter()
                if role == "docs":
                    rows = encoder.encode_documents(texts)
                else:
                    rows = [encoder.encode_query(text) for text in texts]
                seconds = time.perf_counter() - start
                print(f"  {folder.name} {backend} {role} {branch}: {len(texts)} in {seconds:.0f} s")
                if branch == "dense":
                    np.save(path, np.asarray(rows, dtype=np.float32))
                else:
                    sp.save_npz(path, to_csr(rows))
            if branch == "dense":
                vectors[role, branch] = np.load(path)
            else:
                vectors[role, branch] = sp.load_npz(path).astype(np.float64)
    return vectors


def _side(vectors: dict[Any, Any], role: str) -> dict[str, Any]:
    """The dense and sparse vectors of ``role`` ("docs" or "queries")."""
    return {b: vectors[role, b] for b in BRANCHES}


def _texts(folder: Path, ids: dict[str, list[str]], role: str) -> list[str]:
    if role == "docs":
        text = {str(d.id): d.page_content for d in beir_corpus(folder)}
        return [text[i] for i in ids["docs"]]
    queries = beir_queries(folder)
    return [queries[q] for q in ids["queries"]]


def branch_lists(
    ids: dict[str, list[str]], queries: dict[str, Any], docs: dict[str, Any]
) -> dict[str, dict[str, list[BranchHit]]]:
    """Query id -> branch -> its top 100 hits by exact search, best first."""
    by_branch = {
        "dense": dense_scores(queries["dense"], unit(docs["dense"])),
        "sparse": sparse_scores(queries["sparse"], docs["sparse"]),
    }
    lists = {b: top_k(s, DEPTH) for b, s in by_branch.items()}
    return {
        query: {
            b: [
                BranchHit(id=ids["docs"][i], score=float(s))
                for i, s in zip(lists[b][0][row], lists[b][1][row], strict=True)
                if b == "dense" or s > 0  # a sparse search returns no zero-score hits
            ]
            for b in BRANCHES
        }
        for row, query in enumerate(ids["queries"])
    }


def scores(folder: Path, lists: dict[str, dict[str, list[BranchHit]]]) -> dict[str, float]:
    """nDCG@10 of dense, sparse and the default fusion of the branch lists."""
    qrels = beir_qrels(folder, "test")
    texts = beir_queries(folder)
    runs: dict[str, dict[str, dict[str, float]]] = {"dense": {}, "sparse": {}, "hybrid": {}}
    for query, rankings in lists.items():
        for b in BRANCHES:
            runs[b][query] = {h.id: -float(r) for r, h in enumerate(rankings[b][:10], 1)}
        hits = DEFAULT_FUSION_CONFIG.fuse(rankings, query=texts[query], limit=10)
        runs["hybrid"][query] = {h.id: -float(r) for r, h in enumerate(hits, 1)}
    out = {}
    for name, run in runs.items():
        per_query = score_queries(qrels, run, [METRIC])
        out[name] = round(math.fsum(s[METRIC] for s in per_query.values()) / len(per_query), 4)
    return out


def markdown(report: dict[str, Any]) -> str:
    rows = list(next(iter(report["corpora"].values())))
    lines = [
        "| corpus | " + " | ".join(f"{r}: hybrid (dense, sparse)" for r in rows) + " |",
        "|---|" + "---:|" * len(rows),
    ]
    for corpus, by_row in report["corpora"].items():
        cells = [
            f"{v['hybrid']:.4f} ({v['dense']:.4f}, {v['sparse']:.4f})" for v in by_row.values()
        ]
        lines.append(f"| {corpus} | " + " | ".join(cells) + " |")
    means = []
    for row in rows:
        values = [by_row[row] for by_row in report["corpora"].values()]
        mean = {k: sum(v[k] for v in values) / len(values) for k in ("hybrid", "dense", "sparse")}
        means.append(f"{mean['hybrid']:.4f} ({mean['dense']:.4f}, {mean['sparse']:.4f})")
    lines.append("| mean | " + " | ".join(means) + " |")
    lines.append("")
    lines.append(f"nDCG@10, test splits, exact search; {report['command']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, required=True, help="encodings, kept for reruns")
    parser.add_argument("--reference", default="onnx", help="the fp32 backend")
    parser.add_argument("--candidate", default="onnx-int8", help="the backend under test")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--fusion", action="store_true", help="the study's protocol, jointly")
    args = parser.parse_args()
    report: dict[str, Any] = {"corpora": {}}
    study_rows: dict[str, Any] = {}
    for folder in corpora(args.suite):
        print(folder.name, flush=True)
        cache = args.cache / folder.name
        ref = encoded(folder, cache, args.reference)
        cand = encoded(folder, cache, args.candidate)

        ids = ref["ids"]
        lists = {
            args.reference: branch_lists(ids, _side(ref, "queries"), _side(ref, "docs")),
            f"{args.candidate} queries on {args.reference} documents": branch_lists(
                ids, _side(cand, "queries"), _side(ref, "docs")
            ),
            args.candidate: branch_lists(ids, _side(cand, "queries"), _side(cand, "docs")),
        }
        report["corpora"][folder.name] = {row: scores(folder, ls) for row, ls in lists.items()}
        for backend in (args.reference, args.candidate):
            # The study's row: lists, known-item MRR (unused: no calibrated candidate),
            # qrels, query texts.
            row = (
                lists[backend],
                {"dense": 1.0, "sparse": 1.0},
                beir_qrels(folder, "test"),
                beir_queries(folder),
            )
            study_rows[f"{folder.name} {backend}"] = row
        print(json.dumps(report["corpora"][folder.name]), flush=True)
    report.update(
        metric=METRIC,
        split="test",
        search="exact, top 100 per branch, default fusion",
        command=" ".join(["python", "benchmarks/backend_quality.py", *sys.argv[1:]]),
        machine=machine_info(),
    )
    print(markdown(report))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        args.out.with_suffix(".md").write_text(markdown(report) + "\n", encoding="utf-8")
    if args.fusion:
        fusion = joint_fusion_choice(study_rows)
        fusion.update(command=report["command"], machine=report["machine"])
        print(fusion_markdown(fusion))
        if args.out is not None:
            path = args.out.with_name(args.out.stem + "_fusion.json")
            path.write_text(json.dumps(fusion, indent=2) + "\n", encoding="utf-8")
            path.with_suffix(".md").write_text(fusion_markdown(fusion) + "\n", encoding="utf-8")


def joint_fusion_choice(rows: dict[str, Any]) -> dict[str, Any]:
    """The study's candidates scored on every (corpus, backend) row, and its protocol's
    choice over all rows; leave-one-corpus-out holds a corpus out under both backends."""
    pool = [c for c in fusion_study.candidates() if not c.calibrated]
    table = fusion_study.score_table(rows, pool)
    choosable = [c.name for c in pool if c.name not in ("dense", "sparse")]
    corpora_ = sorted({row.split(" ")[0] for row in table})
    held_out = {}
    for corpus in corpora_:
        rest = [row for row in table if row.split(" ")[0] != corpus]
        chosen = fusion_study.choose(table, rest, choosable)
        held_out[corpus] = {
            "chosen": chosen,
            **{
                row.split(" ", 1)[1]: table[row][chosen]
                for row in table
                if row.startswith(corpus + " ")
            },
        }
    chosen = fusion_study.choose(table, list(table), choosable)
    return {"chosen": chosen, "leave_one_corpus_out": held_out, "table": table}


def fusion_markdown(fusion: dict[str, Any]) -> str:
    """Per row: the better branch, equal-weight convex, the default and the choice."""
    chosen, table = fusion["chosen"], fusion["table"]
    names = ["dense", "sparse", "convex 0.5", "default", chosen]
    lines = [
        f"Chosen over all rows: **{chosen}**",
        "",
        "| corpus, backend | "
        + " | ".join(dict.fromkeys(names))
        + " | chosen - max(better branch, convex 0.5) |",
        "|---|" + "---:|" * (len(dict.fromkeys(names)) + 1),
    ]
    for row, values in table.items():
        cells = [f"{values[n]:.4f}" for n in dict.fromkeys(names)]
        lines.append(
            f"| {row} | " + " | ".join(cells) + f" | {fusion_study.lead(values, chosen):+.4f} |"
        )
    lines += ["", "Leave one corpus out (both backends held out):", ""]
    for corpus, held in fusion["leave_one_corpus_out"].items():
        scores_ = ", ".join(f"{k} {v:.4f}" for k, v in held.items() if k != "chosen")
        lines.append(f"* {corpus}: {held['chosen']} ({scores_})")
    lines += ["", f"nDCG@10, test splits, exact search; `{fusion['command']}`"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
