"""Fusion study: every fusion method on SciFact and on deliberately unbalanced settings.

Three stages, each cached under ``--cache`` (not the repository):

1. ``encode``: the corpus and all queries with the default models (dense corpus in
   bf16, dense queries in fp32, SPLADE with its bf16 screening, which leaves the
   vectors unchanged), plus
   the corpus again with the dense input truncated to a few tokens, plus the
   known-item queries that indexing draws from the collection to calibrate the
   branch weights (``calibration.known_item_queries`` gives the same sample).
2. ``lists``: for each setting, the top-``--depth`` ids and raw scores of each branch
   for every test and train query, by exact search (brute force over the cached
   vectors: the same ids and scores an exact Qdrant search returns); and each
   branch's known-item MRR@10 in that setting.
3. ``eval``: every fusion method and parameter from the cached lists, scored with
   ranx, and the library's default: adaptive fusion with the known-item weights that
   indexing stores (no labels); writes ``benchmarks/results/fusion_study.json``
   and ``.md``.

The settings (see :func:`settings`): ``scifact`` as is (the branches are equal);
``sparse-capN``: SPLADE documents and queries capped to their N heaviest terms
(what sentence-transformers' ``max_active_dims`` does); ``dense-truncT``: the dense
encoder reads only the first T tokens of each document; ``dense-noiseS``: Gaussian
noise of standard deviation S per dimension added to each unit document vector;
``dense-layersN``: a poorer dense *model*, all-MiniLM-L6-v2 cut to its first N of 6
transformer layers, for documents and queries alike: the input is intact and the
model itself is weaker.

    python benchmarks/fusion_study.py --data ../shared/data/scifact --stage all
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_retriever.evaluation import beir_corpus, beir_qrels, beir_queries, score_queries
from hybrid_retriever.fusion.methods import FusionMethod, fuse
from hybrid_retriever.fusion.rrf import BranchHit

VOCAB = 30522
TRUNCATIONS = (8, 16)
DENSE_LAYERS = (1, 2)
"""all-MiniLM-L6-v2 cut to its first N of 6 transformer layers: a poorer dense *model*."""


# -- stage 1: encode -----------------------------------------------------------------------------


def known_suffix(seed: int) -> str:
    """Cache file suffix of one known-item sample (seed 0, the library's, has none)."""
    return "" if seed == 0 else f"_s{seed}"


def encode(data: Path, cache: Path, samples: int) -> None:
    import scipy.sparse as sp

    from hybrid_retriever import SentenceTransformerEncoder, SpladeEncoder
    from hybrid_retriever.calibration import known_item_queries
    from hybrid_retriever.encoders.precision import Precision

    docs = list(beir_corpus(data))
    doc_ids = [str(d.id) for d in docs]
    texts = [d.page_content for d in docs]
    queries = beir_queries(data)
    query_ids = list(queries)
    (cache / "ids.json").write_text(json.dumps({"docs": doc_ids, "queries": query_ids}))

    dense = SentenceTransformerEncoder(precision=Precision.BF16)
    query_dense = SentenceTransformerEncoder(precision=Precision.FP32)
    sparse = SpladeEncoder(precision=Precision.AUTO)

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = fn()
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
        return value

    def to_csr(vectors: Sequence[Any]) -> Any:
        rows = np.repeat(np.arange(len(vectors)), [len(v) for v in vectors])
        cols = np.concatenate([np.asarray(v.indices, dtype=np.int64) for v in vectors])
        vals = np.concatenate([np.asarray(v.values, dtype=np.float32) for v in vectors])
        return sp.csr_matrix((vals, (rows, cols)), shape=(len(vectors), VOCAB))

    for seed in range(samples):
        # Label-free calibration's queries (hybrid_retriever.calibration): seed 0 is the
        # sample that indexing this corpus draws from the collection; the others show
        # how much the result depends on the sample.
        sfx = known_suffix(seed)
        if (cache / f"known_items{sfx}.json").exists():
            continue
        items = known_item_queries(beir_corpus(data), seed=seed)
        texts_k = [q.text for q in items]
        targets = [doc_ids.index(q.target_id) for q in items]
        kd = timed(f"known-item dense{sfx}", lambda: query_dense.encode_queries(texts_k))  # noqa: B023
        np.save(cache / f"known_item_dense{sfx}.npy", np.asarray(kd, dtype=np.float32))
        ks = timed(f"known-item sparse{sfx}", lambda: sparse.encode_queries(texts_k))  # noqa: B023
        sp.save_npz(cache / f"known_item_sparse{sfx}.npz", to_csr(ks))
        (cache / f"known_items{sfx}.json").write_text(
            json.dumps({"texts": texts_k, "targets": targets})
        )
    if not (cache / "query_dense.npy").exists():
        qd = timed(
            "dense queries", lambda: [query_dense.encode_query(queries[q]) for q in query_ids]
        )
        np.save(cache / "query_dense.npy", np.asarray(qd, dtype=np.float32))
        qs = timed("sparse queries", lambda: [sparse.encode_query(queries[q]) for q in query_ids])
        sp.save_npz(cache / "query_sparse.npz", to_csr(qs))
    for tokens in TRUNCATIONS:
        path = cache / f"doc_dense_trunc{tokens}.npy"
        if not path.exists():
            truncated = SentenceTransformerEncoder(precision=Precision.BF16)
            truncated.model.max_seq_length = tokens
            run = truncated.encode_documents
            vectors = timed(f"dense docs, {tokens} tokens", lambda: run(texts))  # noqa: B023
            np.save(path, np.asarray(vectors, dtype=np.float32))
    for layers in DENSE_LAYERS:
        # One cut model; documents in bf16 and queries in fp32, as for the full model.
        poor_docs = SentenceTransformerEncoder(precision=Precision.BF16)
        bert: Any = poor_docs.model[0].auto_model
        bert.encoder.layer = bert.encoder.layer[:layers]
        poor_queries = SentenceTransformerEncoder(precision=Precision.FP32)
        poor_queries._model = poor_docs._model
        jobs: list[tuple[Path, Callable[[Sequence[str]], Any], Sequence[str]]] = [
            (cache / f"doc_dense_layers{layers}.npy", poor_docs.encode_documents, texts),
            (
                cache / f"query_dense_layers{layers}.npy",
                poor_queries.encode_queries,
                [queries[q] for q in query_ids],
            ),
        ]
        for seed in range(samples):
            sfx = known_suffix(seed)
            items = json.loads((cache / f"known_items{sfx}.json").read_text())["texts"]
            path = cache / f"known_item_dense_layers{layers}{sfx}.npy"
            jobs.append((path, poor_queries.encode_queries, items))
        for path, encode_with, inputs in jobs:
            if not path.exists():
                vectors = timed(path.stem, lambda: encode_with(inputs))  # noqa: B023
                np.save(path, np.asarray(vectors, dtype=np.float32))
    if not (cache / "doc_dense.npy").exists():
        vectors = timed("dense docs", lambda: dense.encode_documents(texts))
        np.save(cache / "doc_dense.npy", np.asarray(vectors, dtype=np.float32))
    if not (cache / "doc_sparse.npz").exists():
        vectors = timed("sparse docs", lambda: sparse.encode_documents(texts))
        sp.save_npz(cache / "doc_sparse.npz", to_csr(vectors))


# -- stage 2: branch lists -----------------------------------------------------------------------

SPARSE_CAPS = (8, 16, 32)
DENSE_NOISE = (0.06, 0.1)


def cap_rows(matrix: Any, n: int) -> Any:
    """Keep the ``n`` heaviest entries of each row (sentence-transformers' max_active_dims)."""
    import scipy.sparse as sp

    rows, cols, vals = [], [], []
    for r in range(matrix.shape[0]):
        start, end = matrix.indptr[r], matrix.indptr[r + 1]
        data, idx = matrix.data[start:end], matrix.indices[start:end]
        keep = np.argsort(-data, kind="stable")[:n]
        rows.append(np.full(len(keep), r))
        cols.append(idx[keep])
        vals.append(data[keep])
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=matrix.shape
    )


def top_k(scores: Any, k: int) -> tuple[Any, Any]:
    """Indices and scores of the k best columns of each row, best first (ties: lower index)."""
    part = np.argpartition(-scores, k, axis=1)[:, : k + 1]
    order = np.lexsort((part, -np.take_along_axis(scores, part, axis=1)), axis=1)[:, :k]
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(scores, idx, axis=1)


def branch_lists(data: Path, cache: Path, depth: int, samples: int) -> None:
    """Exact top-``depth`` of each branch, per setting, for every judged query; and each
    branch's known-item MRR@10 per setting and sample (what calibration measures)."""
    import scipy.sparse as sp

    from hybrid_retriever.calibration import MRR_DEPTH

    ids = json.loads((cache / "ids.json").read_text())
    judged = sorted(
        set(beir_qrels(data, "test")) | set(beir_qrels(data, "train")),
        key=ids["queries"].index,
    )
    rows = [ids["queries"].index(q) for q in judged]
    judged_queries = (
        np.load(cache / "query_dense.npy")[rows],
        sp.load_npz(cache / "query_sparse.npz")[rows],
    )
    known = {}
    for seed in range(samples):
        sfx = known_suffix(seed)
        known[seed] = (
            np.asarray(json.loads((cache / f"known_items{sfx}.json").read_text())["targets"]),
            np.load(cache / f"known_item_dense{sfx}.npy"),
            sp.load_npz(cache / f"known_item_sparse{sfx}.npz"),
        )
    known_item_mrr: dict[str, list[dict[str, float]]] = {}
    for name, variant in settings(cache, rows, samples).items():
        arrays: dict[str, Any] = {"queries": np.asarray(judged)}
        judged_scores = variant("judged", *judged_queries)
        for branch, scores in zip(("dense", "sparse"), judged_scores, strict=True):
            idx, top = top_k(scores, depth)
            arrays[f"{branch}_idx"] = idx.astype(np.int32)
            arrays[f"{branch}_score"] = top
        np.savez(cache / f"lists_{name}.npz", **arrays)
        known_item_mrr[name] = [
            {
                branch: mrr_at(scores, targets, MRR_DEPTH)
                for branch, scores in zip(
                    ("dense", "sparse"), variant(f"known{seed}", dense, sparse), strict=True
                )
            }
            for seed, (targets, dense, sparse) in known.items()
        ]
        print(f"lists {name}; known-item MRR@10 {known_item_mrr[name]}", flush=True)
    (cache / "known_item_mrr.json").write_text(json.dumps(known_item_mrr, indent=2))


Scores = tuple[Any, Any]
Variant = Callable[[str, Any, Any], Scores]
"""(query set: "judged" or "known<seed>", dense queries, sparse queries) -> (dense, sparse)
scores."""


def settings(cache: Path, judged_rows: Sequence[int], samples: int) -> dict[str, Variant]:
    """Setting name -> how it scores a query set (``judged_rows`` pick the judged queries
    out of all queries, for settings that encode queries with their own model)."""
    import scipy.sparse as sp

    d_dense = unit(np.load(cache / "doc_dense.npy"))
    d_sparse = sp.load_npz(cache / "doc_sparse.npz").astype(np.float64)

    def unchanged(which: str, q_dense: Any, q_sparse: Any) -> Scores:
        return dense_scores(q_dense, d_dense), sparse_scores(q_sparse, d_sparse)

    def capped(n: int) -> Variant:
        docs = cap_rows(d_sparse, n)
        return lambda which, q_dense, q_sparse: (
            dense_scores(q_dense, d_dense),
            sparse_scores(cap_rows(q_sparse, n), docs),
        )

    def dense_docs(docs: Any) -> Variant:
        return lambda which, q_dense, q_sparse: (
            dense_scores(q_dense, docs),
            sparse_scores(q_sparse, d_sparse),
        )

    def dense_model(layers: int) -> Variant:
        docs = unit(np.load(cache / f"doc_dense_layers{layers}.npy"))
        own = {
            "judged": np.load(cache / f"query_dense_layers{layers}.npy")[list(judged_rows)],
            **{
                f"known{seed}": np.load(
                    cache / f"known_item_dense_layers{layers}{known_suffix(seed)}.npy"
                )
                for seed in range(samples)
            },
        }
        return lambda which, q_dense, q_sparse: (
            dense_scores(own[which], docs),
            sparse_scores(q_sparse, d_sparse),
        )

    variants: dict[str, Variant] = {"scifact": unchanged}
    for n in SPARSE_CAPS:
        variants[f"sparse-cap{n}"] = capped(n)
    for tokens in TRUNCATIONS:
        variants[f"dense-trunc{tokens}"] = dense_docs(
            unit(np.load(cache / f"doc_dense_trunc{tokens}.npy"))
        )
    rng = np.random.default_rng(0)
    for sigma in DENSE_NOISE:
        noisy = d_dense + rng.normal(0.0, sigma, size=d_dense.shape)
        variants[f"dense-noise{sigma:g}"] = dense_docs(unit(noisy))
    for layers in DENSE_LAYERS:
        variants[f"dense-layers{layers}"] = dense_model(layers)
    return variants


def unit(m: Any) -> Any:
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float64)


def dense_scores(queries: Any, unit_docs: Any) -> Any:
    """Cosine: unit queries times unit documents."""
    return unit(queries) @ unit_docs.T


def sparse_scores(queries: Any, docs: Any) -> Any:
    """Dot product of sparse rows, as a dense array."""
    return np.asarray((queries.astype(np.float64) @ docs.T).todense())


def mrr_at(scores: Any, targets: Any, depth: int) -> float:
    """Mean reciprocal rank of each row's target column, 0 beyond ``depth``."""
    own = scores[np.arange(len(targets)), targets][:, None]
    ranks = (scores > own).sum(axis=1) + 1
    return float(np.mean(np.where(ranks <= depth, 1.0 / ranks, 0.0)))


def load_lists(cache: Path, name: str) -> dict[str, dict[str, list[BranchHit]]]:
    """Query id -> branch -> hits in rank order, with BEIR doc ids; zero-score sparse hits
    (no shared term) are dropped, as a real sparse search does not return them."""
    doc_ids = json.loads((cache / "ids.json").read_text())["docs"]
    arrays = np.load(cache / f"lists_{name}.npz")
    rankings: dict[str, dict[str, list[BranchHit]]] = {}
    for row, query in enumerate(arrays["queries"]):
        rankings[str(query)] = {
            branch: [
                BranchHit(id=doc_ids[i], score=float(s))
                for i, s in zip(
                    arrays[f"{branch}_idx"][row], arrays[f"{branch}_score"][row], strict=True
                )
                if branch == "dense" or s > 0
            ]
            for branch in ("dense", "sparse")
        }
    return rankings


# -- stage 3: evaluate ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    name: str
    method: FusionMethod
    weights: Mapping[str, float] | None = None
    rrf_k: float = 60.0


RUNS = (
    Run("dense", FusionMethod.RRF, {"dense": 1.0, "sparse": 0.0}),
    Run("sparse", FusionMethod.RRF, {"dense": 0.0, "sparse": 1.0}),
    Run("rrf", FusionMethod.RRF),
    Run("rrf k=20", FusionMethod.RRF, rrf_k=20.0),
    Run("dbsf", FusionMethod.DBSF),
    Run("convex", FusionMethod.CONVEX),
    Run("adaptive", FusionMethod.ADAPTIVE, {"dense": 1.0, "sparse": 1.0}),
)
FUSIONS = [r.name for r in RUNS[2:]]


def ndcg(
    rankings: Mapping[str, Mapping[str, Sequence[BranchHit]]],
    qrels: Mapping[str, Mapping[str, int]],
    run: Run,
) -> float:
    ranking = {}
    for query in qrels:
        branches = {
            b: hits if (run.weights or {}).get(b, 1.0) > 0 else []
            for b, hits in rankings[query].items()
        }
        fused = fuse(branches, method=run.method, weights=run.weights, rrf_k=run.rrf_k, limit=10)
        ranking[query] = {h.id: -float(rank) for rank, h in enumerate(fused, start=1)}
    scores = score_queries(qrels, ranking, ["ndcg@10"])
    return math.fsum(s["ndcg@10"] for s in scores.values()) / len(scores)


def evaluate(data: Path, cache: Path, out: Path) -> dict[str, Any]:
    from hybrid_retriever.tuning import candidate_configs, tune

    qrels = {split: beir_qrels(data, split) for split in ("test", "train")}
    names = sorted(p.stem.removeprefix("lists_") for p in cache.glob("lists_*.npz"))
    names.sort(key=lambda n: (n != "scifact", n))
    from hybrid_retriever.calibration import weights_from_mrr

    known_item_mrr = json.loads((cache / "known_item_mrr.json").read_text())
    table: dict[str, dict[str, float]] = {}
    tuned_configs: dict[str, str] = {}
    calibrated_weights: dict[str, list[dict[str, float]]] = {}
    for name in names:
        rankings = load_lists(cache, name)
        table[name] = {run.name: ndcg(rankings, qrels["test"], run) for run in RUNS}
        # The default, without labels: adaptive with the known-item weights that indexing
        # measures and stores with the collection (sample 0); and with other samples.
        calibrated_weights[name] = [weights_from_mrr(mrr) for mrr in known_item_mrr[name]]
        by_sample = [
            ndcg(rankings, qrels["test"], Run("default", FusionMethod.ADAPTIVE, weights))
            for weights in calibrated_weights[name]
        ]
        table[name]["default"] = by_sample[0]
        table[name]["default, lowest sample"] = min(by_sample)
        table[name]["default, highest sample"] = max(by_sample)
        # With labels: tune on the train queries (prefetch fixed at 100), score on test.
        tuned = tune(
            {q: rankings[q] for q in qrels["train"]},
            qrels["train"],
            configs=candidate_configs(prefetch_grid=(100,)),
        ).config
        table[name]["tuned"] = ndcg(
            rankings, qrels["test"], Run("tuned", tuned.method, tuned.weights, tuned.rrf_k)
        )
        tuned_configs[name] = tuned.describe()
        print(name, json.dumps({k: round(v, 4) for k, v in table[name].items()}), flush=True)
    rankings = load_lists(cache, "scifact")
    result = tune({q: rankings[q] for q in qrels["train"]}, qrels["train"])
    chosen = Run("tuned", result.config.method, result.config.weights, result.config.rrf_k)
    depth = result.config.prefetch_k or 100
    test_lists = {q: {b: hits[:depth] for b, hits in rankings[q].items()} for q in qrels["test"]}
    report = {
        "dataset": data.name,
        "split": "test",
        "metric": "ndcg@10",
        "samples": len(next(iter(known_item_mrr.values()))),
        "settings": table,
        "known_item_mrr@10": known_item_mrr,
        "calibrated_weights": calibrated_weights,
        "tuned_per_setting": tuned_configs,
        "tune": {
            "split": "train",
            "config": result.config.to_json(),
            "report": result.report(),
            "held_out_ndcg_per_fold": result.held_out_scores,
            "held_out_ndcg_mean": result.held_out_mean,
            "held_out_ndcg_std": result.held_out_std,
            "test_ndcg": ndcg(test_lists, qrels["test"], chosen),
        },
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    print(result.report())
    print("tuned on train, test nDCG@10:", round(report["tune"]["test_ndcg"], 4))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report) + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return report


def markdown(report: Mapping[str, Any]) -> str:
    """The README table: nDCG@10 per method per setting, and each fusion's distance
    to the better single branch."""
    header = [
        "setting",
        "dense",
        "sparse",
        *FUSIONS,
        "default (calibrated adaptive)",
        "default - better branch",
        f"same, {report['samples']} samples: lowest, highest",
        "tuned on train",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in report["settings"].items():
        better = max(row["dense"], row["sparse"])
        cells = [f"{row[c]:.3f}" for c in ["dense", "sparse", *FUSIONS]]
        best = max(row[f] for f in FUSIONS)
        cells = [
            f"**{c}**" if i >= 2 and float(c) == round(best, 3) else c for i, c in enumerate(cells)
        ]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {row['default']:.3f} | {row['default'] - better:+.3f}"
            + f" | {row['default, lowest sample'] - better:+.3f}"
            + f", {row['default, highest sample'] - better:+.3f}"
            + f" | {row['tuned']:.3f} |"
        )
    tune = report["tune"]
    lines.append("")
    lines.append(
        "Bold: the best of the per-query methods with equal branch weights. Default: what "
        "a retriever does with no fusion options, adaptive with the known-item branch "
        "weights that indexing stores with the collection (no labels), from the sample "
        "that indexing SciFact draws; the next column repeats it for known-item samples "
        "drawn with seeds 0 to "
        f"{report['samples'] - 1}."
    )
    lines.append("")
    lines.append(
        f"`tune` on SciFact train ({tune['split']}): {tune['config']['fusion']} "
        f"weights={tune['config']['weights']} rrf_k={tune['config']['rrf_k']} "
        f"prefetch_k={tune['config']['prefetch_k']}; held-out folds "
        f"{tune['held_out_ndcg_mean']:.3f} ± {tune['held_out_ndcg_std']:.3f}; "
        f"test nDCG@10 {tune['test_ndcg']:.3f}."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fusion_study"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fusion_study.json"))
    parser.add_argument("--depth", type=int, default=100, help="hits kept per branch")
    parser.add_argument("--stage", choices=["encode", "lists", "eval", "all"], default="all")
    parser.add_argument(
        "--samples", type=int, default=5, help="known-item samples (seeds 0..N-1) per setting"
    )
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.stage in ("encode", "all"):
        encode(args.data, args.cache, args.samples)
    if args.stage in ("lists", "all"):
        branch_lists(args.data, args.cache, args.depth, args.samples)
    if args.stage in ("eval", "all"):
        evaluate(args.data, args.cache, args.out)


if __name__ == "__main__":
    main()
