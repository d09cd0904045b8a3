"""Relevance study (issue 27): does ``_relevance`` tell on-topic queries from off-topic ones,
out of sample, on every corpus of the suite?

    python benchmarks/relevance_study.py --suite ../shared/data --cache /tmp/fusion_study_cache

The plan (features, model family, grid, protocol) was fixed in ``docs/relevance.md``
before this was run. In short, for each corpus C of the suite:

* positives: C's judged test queries, each by the top 1 of the default fusion;
* negatives (off-topic): the judged test queries of the other corpora, searched against C;
* every branch searched exactly over the cached vectors of ``benchmarks/fusion_study.py``
  (dense cosine, SPLADE dot; BM25 with ``Bm25Encoder`` and Qdrant's ``IDF`` modifier), the
  top 100 per branch fused by the library's own ``FusionConfig.fuse``, and the top hit's
  evidence computed by :mod:`hybrid_retriever.relevance`, as the retriever computes it;
* one logistic model per set of branches, fitted leaving one corpus out (its queries too),
  the query scales chosen by an inner leave-one-corpus-out, the threshold on the training
  corpora; ROC AUC, share kept and share dropped on the held-out corpus.

Writes ``benchmarks/results/relevance_study.json`` and ``.md``; the shipped coefficients
(``SCALES``, ``MODELS``, ``RECOMMENDED_THRESHOLD`` in ``hybrid_retriever/relevance.py``)
are the ``shipped`` entry of the JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fusion_study import (
    bm25_scores,
    dense_scores,
    ranked_hits,
    sparse_scores,
    top_k,
    unit,
)

from hybrid_retriever.encoders.bm25 import Bm25Encoder
from hybrid_retriever.evaluation import beir_corpus, beir_qrels, beir_queries
from hybrid_retriever.fusion.branches import ALL_BRANCHES, BM25, DENSE, SPARSE
from hybrid_retriever.fusion.config import DEFAULT_FUSION_CONFIG
from hybrid_retriever.machine import machine_info
from hybrid_retriever.relevance import QueryScale, branch_evidence, floors

DEPTH = 100
SUBSETS = tuple(
    tuple(b for b in ALL_BRANCHES if b in combo)
    for n in (1, 2, 3)
    for combo in itertools.combinations(ALL_BRANCHES, n)
)
LEXICAL_SUBSETS = tuple(s for s in SUBSETS if SPARSE in s or BM25 in s)
GRID = tuple(itertools.product(QueryScale, QueryScale))
"""(SPLADE scale, BM25 scale), in the plan's order."""
THRESHOLD_SUBSETS = ((DENSE, SPARSE), (DENSE, SPARSE, BM25))
"""The defaults, before and after BM25: where the one threshold is chosen."""
L2_PENALTY = 1e-3
DOMAINS = {
    "cacm": "computing",
    "cisi": "computing",
    "medline": "biomedical",
    "nfcorpus": "biomedical",
    "scifact": "biomedical",
    "npl": "physics",
}
"""A secondary view, defined after the per-pair table was seen (not in the plan): a
corpus' negatives restricted to queries of another field. CACM (computing) and CISI
(information science) share a field, as do the three biomedical corpora, so their
queries are not off-topic for each other; nothing is refitted for this view."""


@dataclass
class Row:
    """One query searched against one corpus: the top hit's raw evidence per subset."""

    target: str
    source: str
    query: str
    raw: dict[tuple[str, ...], dict[str, float]]
    """Per subset: each branch's raw score of the top hit (the floor where absent)."""
    top_relevant: dict[tuple[str, ...], bool]
    """Per subset: whether the top hit is judged relevant (on-topic rows only)."""
    scales: dict[str, dict[str, float]]
    """Per lexical branch, per QueryScale value: the query's scale."""

    @property
    def on_topic(self) -> bool:
        return self.target == self.source


# -- rows ------------------------------------------------------------------------------------


def load_corpus(suite: Path, cache: Path, name: str) -> dict[str, Any]:
    import scipy.sparse as sp

    ids = json.loads((cache / name / "ids.json").read_text())
    texts = beir_queries(suite / name)
    qrels = beir_qrels(suite / name, "test")
    return {
        "ids": ids,
        "query_texts": [texts[q] for q in ids["queries"]],
        "qrels": {q: {d for d, g in docs.items() if g > 0} for q, docs in qrels.items()},
        "query_dense": np.load(cache / name / "query_dense.npy"),
        "query_sparse": sp.load_npz(cache / name / "query_sparse.npz"),
    }


def build_rows(suite: Path, cache: Path, names: Sequence[str]) -> list[Row]:
    import scipy.sparse as sp

    corpora = {name: load_corpus(suite, cache, name) for name in names}
    encoder = Bm25Encoder()
    all_texts = [t for name in names for t in corpora[name]["query_texts"]]
    sources = [name for name in names for _ in corpora[name]["query_texts"]]
    local = [i for name in names for i in range(len(corpora[name]["query_texts"]))]
    q_dense = np.concatenate([corpora[n]["query_dense"] for n in names])
    q_sparse = sp.vstack([corpora[n]["query_sparse"] for n in names]).tocsr()
    q_bm25 = encoder.encode_queries(all_texts)
    rows = []
    for target in names:
        start = time.perf_counter()
        data = corpora[target]
        doc_ids = data["ids"]["docs"]
        texts = {str(d.id): d.page_content for d in beir_corpus(suite / target)}
        docs_bm25 = encoder.encode_documents([texts[i] for i in doc_ids])
        scores = {
            DENSE: dense_scores(q_dense, unit(np.load(cache / target / "doc_dense.npy"))),
            SPARSE: sparse_scores(
                q_sparse, sp.load_npz(cache / target / "doc_sparse.npz").astype(np.float64)
            ),
            BM25: bm25_scores(q_bm25, docs_bm25),
        }
        tops = {branch: top_k(matrix, DEPTH) for branch, matrix in scores.items()}
        for row_index, (source, text) in enumerate(zip(sources, all_texts, strict=True)):
            lists = {
                branch: ranked_hits(
                    doc_ids, idx[row_index], top[row_index], drop_zero=branch != DENSE
                )
                for branch, (idx, top) in tops.items()
            }
            query_id = corpora[source]["ids"]["queries"][local[row_index]]
            relevant = corpora[source]["qrels"].get(query_id, set())
            raw, top_relevant = {}, {}
            for subset in SUBSETS:
                chosen = {b: lists[b] for b in subset}
                hit = DEFAULT_FUSION_CONFIG.fuse(chosen, query=text, limit=1)
                bounds = floors(chosen)
                if not hit:  # nothing matched at all (lexical branches only)
                    raw[subset] = dict.fromkeys(subset, 0.0)
                    top_relevant[subset] = False
                    continue
                raw[subset] = {
                    b: (bounds[b] if hit[0].scores[b] is None else float(hit[0].scores[b] or 0))
                    for b in subset
                }
                top_relevant[subset] = source == target and hit[0].id in relevant
            sparse_row = q_sparse.getrow(row_index).data
            row_scales = {
                SPARSE: {s.value: s.of(list(sparse_row)) for s in QueryScale},
                BM25: {s.value: s.of(list(q_bm25[row_index].values)) for s in QueryScale},
            }
            rows.append(Row(target, source, query_id, raw, top_relevant, row_scales))
        print(f"  rows against {target}: {time.perf_counter() - start:.0f} s", flush=True)
    return rows


def features(rows: Sequence[Row], subset: tuple[str, ...], grid: tuple[QueryScale, ...]) -> Any:
    """The evidence matrix (rows x branches of ``subset``) at one grid point."""
    scale_of = {SPARSE: grid[0].value, BM25: grid[1].value}
    return np.asarray(
        [
            [
                branch_evidence(
                    b, row.raw[subset][b], 1.0 if b == DENSE else row.scales[b][scale_of[b]]
                )
                for b in subset
            ]
            for row in rows
        ],
        dtype=np.float64,
    ).reshape(len(rows), len(subset))


# -- model -----------------------------------------------------------------------------------


def fit(x: Any, y: Any) -> tuple[float, list[float]]:
    """Class-balanced logistic regression, weights >= 0, L2 penalty on the weights."""
    from scipy.optimize import minimize

    pos = y == 1
    sample = np.where(pos, 0.5 / max(pos.sum(), 1), 0.5 / max((~pos).sum(), 1))
    # Standardise for the optimiser; the sign constraint survives (scale > 0).
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-12

    def loss(theta: Any) -> tuple[float, Any]:
        z = theta[0] + ((x - mean) / scale) @ theta[1:]
        p = 1.0 / (1.0 + np.exp(-z))
        nll = np.sum(sample * (np.logaddexp(0, z) - y * z))
        residual = sample * (p - y)
        grad = np.concatenate([[residual.sum()], ((x - mean) / scale).T @ residual])
        grad[1:] += 2 * L2_PENALTY * theta[1:]
        return float(nll + L2_PENALTY * np.sum(theta[1:] ** 2)), grad

    start = np.zeros(x.shape[1] + 1)
    bounds = [(None, None)] + [(0.0, None)] * x.shape[1]
    theta = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds).x
    weights = theta[1:] / scale
    intercept = float(theta[0] - np.sum(weights * mean))
    return intercept, [float(w) for w in weights]


def predict(model: tuple[float, list[float]], x: Any) -> Any:
    z = model[0] + x @ np.asarray(model[1])
    return 1.0 / (1.0 + np.exp(-z))


def auc(positives: Any, negatives: Any) -> float:
    """ROC AUC (Mann-Whitney, ties count half)."""
    from scipy.stats import rankdata

    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([positives, negatives]))
    n_pos = len(positives)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * len(negatives)))


def labels(rows: Sequence[Row]) -> Any:
    return np.asarray([1 if row.on_topic else 0 for row in rows])


def subset_rows(rows: Sequence[Row], held_out: Sequence[str]) -> list[Row]:
    """Training rows: neither the target nor the query's corpus held out."""
    return [r for r in rows if r.target not in held_out and r.source not in held_out]


def target_rows(rows: Sequence[Row], target: str, excluded: Sequence[str] = ()) -> list[Row]:
    return [r for r in rows if r.target == target and r.source not in excluded]


def choose_grid(rows: Sequence[Row], corpora: Sequence[str], excluded: Sequence[str]) -> Any:
    """The scale pair with the best mean inner leave-one-corpus-out AUC over ``corpora``."""
    best, best_score = GRID[0], -1.0
    for grid in GRID:
        aucs = []
        for inner in corpora:
            train = subset_rows(rows, (*excluded, inner))
            test = target_rows(rows, inner, excluded)
            y = labels(test)
            for subset in LEXICAL_SUBSETS:
                model = fit(features(train, subset, grid), labels(train))
                p = predict(model, features(test, subset, grid))
                aucs.append(auc(p[y == 1], p[y == 0]))
        score = float(np.mean(aucs))
        if score > best_score + 1e-12:
            best, best_score = grid, score
    return best, best_score


def choose_threshold(relevant: Any, off_topic: Any) -> float:
    """The threshold maximising min(share of ``relevant`` kept, share of ``off_topic``
    dropped); kept means >= threshold. Ties: the midpoint of the best range's ends."""
    candidates = np.unique(np.concatenate([relevant, off_topic]))
    best, best_value = 0.5, -1.0
    for t in candidates:
        value = min(np.mean(relevant >= t), np.mean(off_topic < t))
        if value > best_value + 1e-12:
            best, best_value = float(t), value
    return round(best, 2)


# -- protocol --------------------------------------------------------------------------------


def evaluate(rows: Sequence[Row], names: Sequence[str]) -> dict[str, Any]:
    held: dict[str, Any] = {}
    loo_scores: dict[tuple[str, ...], dict[str, Any]] = {s: {} for s in SUBSETS}
    for target in names:
        start = time.perf_counter()
        others = [n for n in names if n != target]
        grid, inner = choose_grid(rows, others, (target,))
        train = subset_rows(rows, (target,))
        test = target_rows(rows, target)
        y, y_train = labels(test), labels(train)
        models = {s: fit(features(train, s, grid), y_train) for s in SUBSETS}
        # The threshold: on the training corpora's own (in-sample) scores.
        rel_train, off_train = [], []
        for s in THRESHOLD_SUBSETS:
            p = predict(models[s], features(train, s, grid))
            rel_train.append(p[np.asarray([r.top_relevant[s] for r in train])])
            off_train.append(p[y_train == 0])
        threshold = choose_threshold(np.concatenate(rel_train), np.concatenate(off_train))
        per_subset = {}
        for s in SUBSETS:
            p = predict(models[s], features(test, s, grid))
            top_rel = np.asarray([r.top_relevant[s] for r in test])
            pairs = {
                src: auc(p[y == 1], p[np.asarray([r.source == src for r in test])])
                for src in others
            }
            per_subset["+".join(s)] = {
                "auc": auc(p[y == 1], p[y == 0]),
                "auc_top1_relevant": auc(p[top_rel], p[y == 0]),
                "kept_judged": float(np.mean(p[y == 1] >= threshold)),
                "kept_top1_relevant": float(np.mean(p[top_rel] >= threshold)),
                "dropped_off_topic": float(np.mean(p[y == 0] < threshold)),
                "auc_per_negative_corpus": pairs,
                "n_judged": int((y == 1).sum()),
                "n_top1_relevant": int(top_rel.sum()),
                "n_off_topic": int((y == 0).sum()),
            }
            cross = np.asarray([DOMAINS.get(r.source) != DOMAINS.get(target) for r in test])
            per_subset["+".join(s)]["auc_cross_domain"] = auc(p[y == 1], p[(y == 0) & cross])
            loo_scores[s][target] = {
                "judged": p[y == 1],
                "relevant": p[top_rel],
                "off_topic": p[y == 0],
                "cross_domain": p[(y == 0) & cross],
            }
        held[target] = {
            "scales": {SPARSE: grid[0].value, BM25: grid[1].value},
            "inner_auc": inner,
            "threshold": threshold,
            "subsets": per_subset,
        }
        print(f"  held out {target}: {time.perf_counter() - start:.0f} s", flush=True)
    pooled = {}
    for s in SUBSETS:
        per = loo_scores[s]
        relevant = np.concatenate([per[t]["relevant"] for t in names])
        off = np.concatenate([per[t]["off_topic"] for t in names])
        judged = np.concatenate([per[t]["judged"] for t in names])
        kept = sum(int(np.sum(per[t]["relevant"] >= held[t]["threshold"])) for t in names)
        dropped = sum(int(np.sum(per[t]["off_topic"] < held[t]["threshold"])) for t in names)
        pooled["+".join(s)] = {
            "auc": auc(judged, off),
            "kept_top1_relevant": kept / len(relevant),
            "dropped_off_topic": dropped / len(off),
        }
    # The one documented threshold: on the pooled leave-one-out scores of the defaults.
    rel = np.concatenate([loo_scores[s][t]["relevant"] for s in THRESHOLD_SUBSETS for t in names])
    off = np.concatenate([loo_scores[s][t]["off_topic"] for s in THRESHOLD_SUBSETS for t in names])
    threshold = choose_threshold(rel, off)
    at_threshold = {}
    for s in SUBSETS:
        per = loo_scores[s]
        relevant = np.concatenate([per[t]["relevant"] for t in names])
        judged = np.concatenate([per[t]["judged"] for t in names])
        off_s = np.concatenate([per[t]["off_topic"] for t in names])
        cross = np.concatenate([per[t]["cross_domain"] for t in names])
        at_threshold["+".join(s)] = {
            "dropped_cross_domain": float(np.mean(cross < threshold)),
            "kept_top1_relevant": float(np.mean(relevant >= threshold)),
            "kept_judged": float(np.mean(judged >= threshold)),
            "dropped_off_topic": float(np.mean(off_s < threshold)),
            "per_corpus": {
                t: {
                    "kept_top1_relevant": float(np.mean(per[t]["relevant"] >= threshold)),
                    "dropped_off_topic": float(np.mean(per[t]["off_topic"] < threshold)),
                }
                for t in names
            },
        }
    return {
        "held_out": held,
        "pooled_fold_thresholds": pooled,
        "threshold": threshold,
        "at_threshold": at_threshold,
    }


def shipped(rows: Sequence[Row], names: Sequence[str]) -> dict[str, Any]:
    """The coefficients the library ships: scales by leave-one-out over all corpora, every
    subset's model fitted on all of them."""
    grid, inner = choose_grid(rows, names, ())
    y = labels(rows)
    models = {}
    for s in SUBSETS:
        intercept, weights = fit(features(rows, s, grid), y)
        models["+".join(s)] = {
            "intercept": round(intercept, 4),
            "weights": {b: round(w, 4) for b, w in zip(s, weights, strict=True)},
        }
    return {
        "scales": {SPARSE: grid[0].value, BM25: grid[1].value},
        "inner_auc": inner,
        "models": models,
    }


# -- report ----------------------------------------------------------------------------------


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def markdown(report: Mapping[str, Any]) -> str:
    names = list(report["evaluation"]["held_out"])
    ev = report["evaluation"]
    lines = [
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}; load average at start {report['load']}; "
        f"{report['seconds']:.0f} s.",
        "",
        f"**The one threshold: {ev['threshold']}** (chosen on the pooled leave-one-out "
        "scores of dense+sparse and dense+sparse+bm25).",
        "",
    ]
    for subset in ("dense+sparse", "dense+sparse+bm25", "dense"):
        lines += [
            f"### {subset}",
            "",
            "| corpus | AUC judged vs off-topic | AUC top-1-relevant vs off-topic | fold threshold "
            "| kept (top 1 relevant) | dropped (off-topic) | hardest negatives (AUC) |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for t in names:
            e = ev["held_out"][t]["subsets"][subset]
            hardest = min(e["auc_per_negative_corpus"].items(), key=lambda kv: kv[1])
            lines.append(
                f"| {t} | {e['auc']:.3f} | {e['auc_top1_relevant']:.3f} | "
                f"{ev['held_out'][t]['threshold']} | {pct(e['kept_top1_relevant'])} | "
                f"{pct(e['dropped_off_topic'])} | {hardest[0]} ({hardest[1]:.3f}) |"
            )
        p = ev["pooled_fold_thresholds"][subset]
        a = ev["at_threshold"][subset]
        lines += [
            f"| pooled | {p['auc']:.3f} | | fold's | {pct(p['kept_top1_relevant'])} | "
            f"{pct(p['dropped_off_topic'])} | |",
            f"| pooled | | | {ev['threshold']} | {pct(a['kept_top1_relevant'])} | "
            f"{pct(a['dropped_off_topic'])} | |",
            "",
        ]
    lines += [
        "### Every subset, pooled",
        "",
        "| branches | AUC | kept | dropped |",
        "|---|---:|---:|---:|",
    ]
    for subset, p in ev["pooled_fold_thresholds"].items():
        lines.append(
            f"| {subset} | {p['auc']:.3f} | {pct(p['kept_top1_relevant'])} | "
            f"{pct(p['dropped_off_topic'])} |"
        )
    lines += [
        "",
        "### Secondary view (post hoc): negatives from another field only",
        "",
        "Fields: " + ", ".join(f"{n} {d}" for n, d in DOMAINS.items()) + ". Same scores, "
        "nothing refitted.",
        "",
        "| corpus | AUC dense+sparse | AUC dense+sparse+bm25 |",
        "|---|---:|---:|",
    ]
    for t in names:
        subsets = ev["held_out"][t]["subsets"]
        lines.append(
            f"| {t} | {subsets['dense+sparse']['auc_cross_domain']:.3f} | "
            f"{subsets['dense+sparse+bm25']['auc_cross_domain']:.3f} |"
        )
    for subset in ("dense+sparse", "dense+sparse+bm25"):
        a = ev["at_threshold"][subset]
        lines.append(
            f"\nAt {ev['threshold']}, {subset}: {pct(a['dropped_cross_domain'])} of the "
            "other fields' queries dropped."
        )
    lines += [
        "",
        "### AUC per pair (dense+sparse+bm25; row: held-out corpus, column: negatives)",
        "",
    ]
    lines.append("| corpus | " + " | ".join(names) + " |")
    lines.append("|---|" + "---:|" * len(names))
    for t in names:
        pairs = ev["held_out"][t]["subsets"]["dense+sparse+bm25"]["auc_per_negative_corpus"]
        lines.append(
            f"| {t} | " + " | ".join("" if n == t else f"{pairs[n]:.3f}" for n in names) + " |"
        )
    lines += [
        "",
        "Shipped coefficients:",
        "",
        "```json",
        json.dumps(report["shipped"], indent=1),
        "```",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fusion_study_cache"))
    parser.add_argument("--rows", type=Path, default=Path("/tmp/relevance_study_rows.json"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/relevance_study.json"))
    args = parser.parse_args()
    load = os.getloadavg()
    start = time.perf_counter()
    names = sorted(p.name for p in args.cache.iterdir() if (args.suite / p.name).is_dir())
    if args.rows.exists():
        rows = [
            Row(
                r["target"],
                r["source"],
                r["query"],
                {tuple(k.split("+")): v for k, v in r["raw"].items()},
                {tuple(k.split("+")): v for k, v in r["top_relevant"].items()},
                r["scales"],
            )
            for r in json.loads(args.rows.read_text())
        ]
    else:
        rows = build_rows(args.suite, args.cache, names)
        args.rows.write_text(
            json.dumps(
                [
                    {
                        "target": r.target,
                        "source": r.source,
                        "query": r.query,
                        "raw": {"+".join(k): v for k, v in r.raw.items()},
                        "top_relevant": {"+".join(k): v for k, v in r.top_relevant.items()},
                        "scales": r.scales,
                    }
                    for r in rows
                ]
            )
        )
    report = {
        "command": "python " + " ".join(sys.argv),
        "machine": machine_info(),
        "load": [round(x, 2) for x in load],
        "corpora": names,
        "evaluation": evaluate(rows, names),
        "shipped": shipped(rows, names),
    }
    report["seconds"] = time.perf_counter() - start
    report["shipped"]["threshold"] = report["evaluation"]["threshold"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
