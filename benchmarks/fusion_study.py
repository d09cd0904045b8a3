"""Fusion study: every fusion candidate on every corpus of a suite, and the default chosen
by leave-one-corpus-out.

    python benchmarks/fusion_study.py --suite ../shared/data --stage all

Three stages, each cached under ``--cache`` (not the repository), one folder per corpus:

1. ``encode``: each corpus and its judged test queries with the library's default
   encoders (``encode_documents`` and ``encode_queries``, as indexing and ``invoke`` call
   them); plus the known-item queries that the old label-free calibration drew
   (:func:`known_item_queries`), so that it is scored on every corpus too. For SciFact,
   also the encodings of the synthetic stress settings (see :func:`stress_settings`).
2. ``lists``: for every judged test query, the top ``--depth`` ids and raw
   scores of each branch by exact search (brute force over the cached vectors: the
   ids and scores an exact Qdrant search returns); and each branch's known-item MRR@10.
3. ``eval``: every candidate of :func:`candidates` on every corpus and setting, from the
   cached lists, through the library's own ``FusionConfig.fuse`` (the retriever's step);
   nDCG@10 by ranx on the test split. Then the protocol that chose the default
   (:func:`leave_one_corpus_out`), and the per-query evidence for weighting by query
   length (:func:`length_evidence`); writes ``benchmarks/results/fusion_study.json``
   and ``.md``.

The candidates: RRF; convex, DBSF and adaptive fusion with a fixed dense share; convex
fusion whose dense share grows with the query's length (:mod:`hybrid_retriever.fusion.
query_length`, a grid of its base and slope); and the old calibrated default.

Real corpora are the target; the synthetic rows (SciFact with one branch weakened) are
stress tests, shown apart and never used to choose.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import numpy as np

from hybrid_retriever.evaluation import beir_corpus, beir_qrels, beir_queries, score_queries
from hybrid_retriever.fusion.config import DEFAULT_FUSION_CONFIG, FusionConfig
from hybrid_retriever.fusion.methods import FusionMethod
from hybrid_retriever.fusion.query_length import query_length_weights
from hybrid_retriever.fusion.rrf import BranchHit
from hybrid_retriever.machine import machine_info

VOCAB = 30522
STRESS_CORPUS = "scifact"
"""The corpus the synthetic stress settings are made from."""
TRUNCATIONS = (8, 16)
DENSE_LAYERS = (1, 2)
SPARSE_CAPS = (8, 16, 32)
DENSE_NOISE = (0.06, 0.1)
METRIC = "ndcg@10"
TOLERANCE = 0.005
"""The issue's bar: within this of the better branch, and of convex alpha 0.5."""


def corpora(suite: Path) -> list[Path]:
    """Every BEIR folder of the suite, by name."""
    return sorted(p for p in suite.iterdir() if (p / "qrels").is_dir())


def splits(folder: Path) -> list[str]:
    return sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))


# -- the old default: known-item calibration (removed from the library; see docs/fusion.md) -------

KNOWN_ITEM_SAMPLE = 200
SENTENCE_WORDS = (6, 30)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SAMPLE_NAMESPACE = uuid.UUID("5b0b9d9e-6c1f-4b0e-9a53-1f3c0c6f2a47")


def known_item_queries(documents: Sequence[Any]) -> list[tuple[str, str]]:
    """(sentence, document id) for the sample that ``calibration.py`` drew at seed 0,
    as it stood before it was removed (commit f1089e2): the documents whose point ids
    come first after a fixed start, each with one 6-30-word sentence of its own text
    (not the first, which is often a title), chosen by the document's point id."""
    from hybrid_retriever.documents import point_id

    start = uuid.uuid5(_SAMPLE_NAMESPACE, "0").int
    points = {point_id(d.id, d.page_content, d.metadata): d for d in documents}
    order = sorted(points, key=lambda p: (uuid.UUID(p).int - start) % 2**128)
    queries = []
    for point in order[: KNOWN_ITEM_SAMPLE * 20]:
        sentences = [s.strip() for s in _SENTENCE_END.split(points[point].page_content)]
        low, high = SENTENCE_WORDS
        usable = [s for s in sentences if low <= len(s.split()) <= high]
        if len(usable) > 1 and usable[0] == sentences[0]:
            usable = usable[1:]
        if usable:
            queries.append((Random(f"0:{point}").choice(usable), str(points[point].id)))
            if len(queries) == KNOWN_ITEM_SAMPLE:
                break
    return queries


def weights_from_mrr(mrr: Mapping[str, float]) -> dict[str, float]:
    """Each branch's known-item MRR@10 squared, normalised to sum to 1."""
    squared = {branch: value * value for branch, value in mrr.items()}
    total = math.fsum(squared.values())
    return {b: (v / total if total else 0.5) for b, v in squared.items()}


# -- stage 1: encode -----------------------------------------------------------------------------


def timed(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    start = time.perf_counter()
    value = fn(*args)
    print(f"  {name}: {time.perf_counter() - start:.0f} s", flush=True)
    return value


def to_csr(vectors: Sequence[Any]) -> Any:
    import scipy.sparse as sp

    rows = np.repeat(np.arange(len(vectors)), [len(v) for v in vectors])
    cols = np.concatenate([np.asarray(v.indices, dtype=np.int64) for v in vectors])
    vals = np.concatenate([np.asarray(v.values, dtype=np.float32) for v in vectors])
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(vectors), VOCAB))


def encode(folder: Path, cache: Path) -> None:
    """The corpus, its judged test queries and its known-item queries, default encoders;
    each array cached as soon as it is made."""
    import scipy.sparse as sp

    from hybrid_retriever import SentenceTransformerEncoder, SpladeEncoder

    cache.mkdir(parents=True, exist_ok=True)
    print(f"encode {folder.name}", flush=True)
    docs = list(beir_corpus(folder))
    doc_ids = [str(d.id) for d in docs]
    queries = beir_queries(folder)
    judged = beir_qrels(folder, "test")
    query_ids = [q for q in queries if q in judged]
    items = known_item_queries(docs)
    position = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    targets = [position[target] for _, target in items]
    ids = {"docs": doc_ids, "queries": query_ids, "known_item_targets": targets}
    (cache / "ids.json").write_text(json.dumps(ids))
    dense, sparse = SentenceTransformerEncoder(), SpladeEncoder()
    jobs = {
        "query": [queries[q] for q in query_ids],
        "known_item": [text for text, _ in items],
        "doc": [d.page_content for d in docs],
    }
    for name, texts in jobs.items():
        encode_dense = dense.encode_documents if name == "doc" else dense.encode_queries
        encode_sparse = sparse.encode_documents if name == "doc" else sparse.encode_queries
        if not (cache / f"{name}_dense.npy").exists():
            vectors = timed(f"{name} dense ({len(texts)})", encode_dense, texts)
            np.save(cache / f"{name}_dense.npy", np.asarray(vectors, dtype=np.float32))
        if not (cache / f"{name}_sparse.npz").exists():
            vectors = timed(f"{name} sparse ({len(texts)})", encode_sparse, texts)
            sp.save_npz(cache / f"{name}_sparse.npz", to_csr(vectors))


def encode_stress(folder: Path, cache: Path) -> None:
    """The weakened dense encodings of the stress settings (SciFact only)."""
    from hybrid_retriever import SentenceTransformerEncoder

    texts = [d.page_content for d in beir_corpus(folder)]
    ids = json.loads((cache / "ids.json").read_text())
    queries = beir_queries(folder)
    query_texts = [queries[q] for q in ids["queries"]]
    for tokens in TRUNCATIONS:
        path = cache / f"doc_dense_trunc{tokens}.npy"
        if not path.exists():
            truncated = SentenceTransformerEncoder(backend="torch")  # edits the torch model
            truncated.model.max_seq_length = tokens
            vectors = timed(path.stem, truncated.encode_documents, texts)
            np.save(path, np.asarray(vectors, dtype=np.float32))
    for layers in DENSE_LAYERS:
        if (cache / f"query_dense_layers{layers}.npy").exists():
            continue
        # A poorer dense *model*: the first N layers (of the PyTorch model it edits).
        poor = SentenceTransformerEncoder(backend="torch")
        bert: Any = poor.model[0].auto_model
        bert.encoder.layer = bert.encoder.layer[:layers]
        vectors = timed(f"docs, {layers} layers", poor.encode_documents, texts)
        np.save(cache / f"doc_dense_layers{layers}.npy", np.asarray(vectors, dtype=np.float32))
        vectors = [poor.encode_query(t) for t in query_texts]
        np.save(cache / f"query_dense_layers{layers}.npy", np.asarray(vectors, dtype=np.float32))


# -- stage 2: branch lists -----------------------------------------------------------------------

Scores = tuple[Any, Any]
Setting = Callable[[Any, Any], Scores]
"""(dense queries, sparse queries) -> (dense scores, sparse scores), queries x documents."""


def unit(m: Any) -> Any:
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float64)


def dense_scores(queries: Any, unit_docs: Any) -> Any:
    """Cosine: unit queries times unit documents."""
    return unit(queries) @ unit_docs.T


def sparse_scores(queries: Any, docs: Any) -> Any:
    """Dot product of sparse rows, as a dense array."""
    return np.asarray((queries.astype(np.float64) @ docs.T).todense())


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


def plain_setting(cache: Path) -> Setting:
    import scipy.sparse as sp

    docs_dense = unit(np.load(cache / "doc_dense.npy"))
    docs_sparse = sp.load_npz(cache / "doc_sparse.npz").astype(np.float64)
    return lambda q_dense, q_sparse: (
        dense_scores(q_dense, docs_dense),
        sparse_scores(q_sparse, docs_sparse),
    )


def stress_settings(cache: Path) -> dict[str, Setting]:
    """SciFact with one branch weakened: ``sparse-capN`` keeps each SPLADE vector's N
    heaviest terms; ``dense-truncT`` lets the dense model read T tokens of a document;
    ``dense-noiseS`` adds Gaussian noise (std S per dimension) to unit document vectors;
    ``dense-layersN`` is all-MiniLM-L6-v2 cut to its first N of 6 layers (documents and
    judged queries; known-item queries keep the full model)."""
    import scipy.sparse as sp

    docs_dense = unit(np.load(cache / "doc_dense.npy"))
    docs_sparse = sp.load_npz(cache / "doc_sparse.npz").astype(np.float64)
    settings: dict[str, Setting] = {}
    for n in SPARSE_CAPS:
        capped = cap_rows(docs_sparse, n)
        settings[f"sparse-cap{n}"] = lambda qd, qs, c=capped, n=n: (  # type: ignore[misc]
            dense_scores(qd, docs_dense),
            sparse_scores(cap_rows(qs, n), c),
        )
    weakened = {
        f"dense-trunc{t}": np.load(cache / f"doc_dense_trunc{t}.npy")
        for t in TRUNCATIONS
        if (cache / f"doc_dense_trunc{t}.npy").exists()
    }
    rng = np.random.default_rng(0)
    for sigma in DENSE_NOISE:
        weakened[f"dense-noise{sigma:g}"] = docs_dense + rng.normal(0, sigma, docs_dense.shape)
    for name, docs in weakened.items():
        unit_docs = unit(docs)
        settings[name] = lambda qd, qs, d=unit_docs: (  # type: ignore[misc]
            dense_scores(qd, d),
            sparse_scores(qs, docs_sparse),
        )
    for layers in DENSE_LAYERS:
        if not (cache / f"query_dense_layers{layers}.npy").exists():
            continue  # not encoded (yet)
        docs = unit(np.load(cache / f"doc_dense_layers{layers}.npy"))
        own = np.load(cache / f"query_dense_layers{layers}.npy")
        settings[f"dense-layers{layers}"] = lambda qd, qs, d=docs, own=own: (  # type: ignore[misc]
            dense_scores(own if len(qd) == len(own) else qd, d),
            sparse_scores(qs, docs_sparse),
        )
    return settings


def top_k(scores: Any, k: int) -> tuple[Any, Any]:
    """Indices and scores of the k best columns of each row, best first (ties: lower index)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.lexsort((part, -np.take_along_axis(scores, part, axis=1)), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(scores, idx, axis=1)


def mrr_at(scores: Any, targets: Any, depth: int = 10) -> float:
    """Mean reciprocal rank of each row's target column, 0 beyond ``depth``."""
    own = scores[np.arange(len(targets)), targets][:, None]
    ranks = (scores > own).sum(axis=1) + 1
    return float(np.mean(np.where(ranks <= depth, 1.0 / ranks, 0.0)))


def branch_lists(cache: Path, settings: Mapping[str, Setting], depth: int) -> None:
    import scipy.sparse as sp

    ids = json.loads((cache / "ids.json").read_text())
    queries = (np.load(cache / "query_dense.npy"), sp.load_npz(cache / "query_sparse.npz"))
    known = (np.load(cache / "known_item_dense.npy"), sp.load_npz(cache / "known_item_sparse.npz"))
    targets = np.asarray(ids["known_item_targets"])
    for name, setting in settings.items():
        if (cache / f"lists_{name}.npz").exists():
            continue
        arrays: dict[str, Any] = {}
        for branch, scores in zip(("dense", "sparse"), setting(*queries), strict=True):
            idx, top = top_k(scores, depth)
            arrays[f"{branch}_idx"], arrays[f"{branch}_score"] = idx.astype(np.int32), top
        mrr = {
            branch: mrr_at(scores, targets)
            for branch, scores in zip(("dense", "sparse"), setting(*known), strict=True)
        }
        arrays["known_item_mrr"] = np.asarray([mrr["dense"], mrr["sparse"]])
        np.savez(cache / f"lists_{name}.npz", **arrays)
        print(f"  lists {cache.name}/{name}: known-item MRR@10 {mrr}", flush=True)


Rankings = dict[str, dict[str, list[BranchHit]]]


def load_lists(cache: Path, name: str) -> tuple[Rankings, dict[str, float]]:
    """Query id -> branch -> hits in rank order (corpus ids), and the known-item MRR.

    Sparse hits that share no term with the query (score 0) are dropped, as a real
    sparse search does not return them."""
    ids = json.loads((cache / "ids.json").read_text())
    doc_ids = ids["docs"]
    arrays = np.load(cache / f"lists_{name}.npz")
    rankings: Rankings = {}
    for row, query in enumerate(ids["queries"]):
        rankings[query] = {
            branch: [
                BranchHit(id=doc_ids[i], score=float(s))
                for i, s in zip(
                    arrays[f"{branch}_idx"][row], arrays[f"{branch}_score"][row], strict=True
                )
                if branch == "dense" or s > 0
            ]
            for branch in ("dense", "sparse")
        }
    mrr = arrays["known_item_mrr"]
    return rankings, {"dense": float(mrr[0]), "sparse": float(mrr[1])}


# -- stage 3: candidates, scores, protocol -------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A label-free way to fuse: a fixed config, one that reads the known-item MRR, or
    convex fusion with weights from the query's length."""

    name: str
    config: FusionConfig
    calibrated: bool = False
    """Weights from the known-item calibration (the old default), times ``config``'s."""
    length_rule: tuple[float, float] | None = None
    """(base, slope) of :func:`query_length_weights`: per-query convex weights."""
    family: str = field(default="", compare=False)


def candidates() -> list[Candidate]:
    """What the protocol chooses among: each method with a fixed dense share of the
    weight (a prior), and the old calibrated default."""
    out: list[Candidate] = [
        Candidate("dense", FusionConfig(FusionMethod.RRF, {"dense": 1.0, "sparse": 0.0})),
        Candidate("sparse", FusionConfig(FusionMethod.RRF, {"dense": 0.0, "sparse": 1.0})),
    ]
    for rrf_k in (10.0, 20.0, 60.0):
        out.append(
            Candidate(f"rrf k={rrf_k:g}", FusionConfig(FusionMethod.RRF, rrf_k=rrf_k), family="rrf")
        )
    for share in (0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8):
        weights = {"dense": share, "sparse": round(1 - share, 2)}
        for method in (FusionMethod.CONVEX, FusionMethod.DBSF, FusionMethod.ADAPTIVE):
            out.append(
                Candidate(
                    f"{method.value} {share:g}", FusionConfig(method, weights), family=method.value
                )
            )
    for base in LENGTH_BASES:
        for slope in LENGTH_SLOPES:
            out.append(
                Candidate(
                    f"length {base:g}+{slope:g}",
                    FusionConfig(FusionMethod.CONVEX),
                    length_rule=(base, slope),
                    family="length",
                )
            )
    out.append(
        Candidate("calibrated adaptive (old default)", FusionConfig(FusionMethod.ADAPTIVE), True)
    )
    return out


LENGTH_BASES = (0.45, 0.5, 0.55, 0.6)
"""Dense share at 10 words, for the query-length family (slope 0 is the fixed shares)."""
LENGTH_SLOPES = (0.025, 0.0375, 0.05, 0.075)
"""Dense share added per doubling of the query's words."""


def mean_ndcg(
    rankings: Rankings,
    qrels: Mapping[str, Mapping[str, int]],
    texts: Mapping[str, str],
    config: FusionConfig,
    weights: Mapping[str, float] | None = None,
    length_rule: tuple[float, float] | None = None,
) -> float:
    """nDCG@10 over the judged queries of ``qrels``, fused by ``config`` (through the
    library's ``FusionConfig.fuse``, the retriever's fusion); ``texts`` are the queries'."""
    if weights is not None:
        base = config.weights or {"dense": 1.0, "sparse": 1.0}
        config = FusionConfig(config.method, {b: base[b] * weights[b] for b in base}, config.rrf_k)
    ranking = {}
    for query in qrels:
        per_query = config
        if length_rule is not None:
            base_share, slope = length_rule
            rule = query_length_weights(texts[query], base=base_share, slope=slope)
            per_query = FusionConfig(config.method, rule, config.rrf_k)
        hits = per_query.fuse(rankings[query], query=texts[query], limit=10)
        ranking[query] = {h.id: -float(rank) for rank, h in enumerate(hits, start=1)}
    scores = score_queries(qrels, ranking, [METRIC])
    return math.fsum(s[METRIC] for s in scores.values()) / len(scores)


Row = tuple[Rankings, dict[str, float], dict[str, dict[str, int]], dict[str, str]]
"""A corpus or setting: branch lists, known-item MRR, qrels, query texts."""


def score_table(rows: Mapping[str, Row], pool: Sequence[Candidate]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for row, (rankings, mrr, qrels, texts) in rows.items():
        calibrated = weights_from_mrr(mrr)
        table[row] = {
            c.name: mean_ndcg(
                rankings,
                qrels,
                texts,
                c.config,
                calibrated if c.calibrated else None,
                c.length_rule,
            )
            for c in pool
        }
        table[row]["default"] = mean_ndcg(rankings, qrels, texts, DEFAULT_FUSION_CONFIG)
        print(f"  {row}: " + ", ".join(f"{k} {v:.3f}" for k, v in table[row].items()), flush=True)
    return table


def margin(row: Mapping[str, float], name: str) -> float:
    """How far a candidate is above the better single branch."""
    return row[name] - max(row["dense"], row["sparse"])


def lead(row: Mapping[str, float], name: str) -> float:
    """How far a candidate is above the better of the better branch and equal-weight
    convex fusion: the bar the default must clear on every corpus."""
    return row[name] - max(row["dense"], row["sparse"], row["convex 0.5"])


def choose(
    table: Mapping[str, Mapping[str, float]], corpora_: Sequence[str], pool: Sequence[str]
) -> str:
    """The candidate with the best worst-case :func:`lead` over ``corpora_`` (ties within
    0.001: the better mean). Worst case, because the default must hold on every corpus."""

    def key(name: str) -> tuple[float, float]:
        margins = [lead(table[c], name) for c in corpora_]
        return (round(min(margins), 3), math.fsum(margins) / len(margins))

    return max(pool, key=key)


def leave_one_corpus_out(
    table: Mapping[str, Mapping[str, float]], real: Sequence[str], pool: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """For each corpus: the candidate chosen on the others, and its score on this one."""
    out = {}
    for held_out in real:
        chosen = choose(table, [c for c in real if c != held_out], pool)
        out[held_out] = {"chosen": chosen, METRIC: table[held_out][chosen]}
    return out


def evaluate(suite: Path, cache: Path, out: Path) -> dict[str, Any]:
    pool = candidates()
    rows: dict[str, Row] = {}
    stress_rows: dict[str, Row] = {}
    for folder in corpora(suite):
        qrels = beir_qrels(folder, "test")
        texts = beir_queries(folder)
        for path in sorted((cache / folder.name).glob("lists_*.npz")):
            setting = path.stem.removeprefix("lists_")
            rankings, mrr = load_lists(cache / folder.name, setting)
            target = rows if setting == "plain" else stress_rows
            target[folder.name if setting == "plain" else setting] = (rankings, mrr, qrels, texts)
    print("scoring", flush=True)
    table = score_table(rows, pool)
    stress = score_table(stress_rows, pool)
    real = list(table)
    choosable = [c.name for c in pool if c.name not in ("dense", "sparse")]
    loo = leave_one_corpus_out(table, real, choosable)
    report = {
        "suite": [str(p) for p in corpora(suite)],
        "metric": METRIC,
        "split": "test",
        "default": DEFAULT_FUSION_CONFIG.describe(),
        "chosen_on_all_corpora": choose(table, real, choosable),
        "leave_one_corpus_out": loo,
        "corpora": table,
        "stress": stress,
        "length_evidence": length_evidence(rows),
        "known_item_mrr@10": {name: row[1] for name, row in {**rows, **stress_rows}.items()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report) + "\n")
    print(markdown(report))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return report


LENGTH_BINS = ((1, 5), (6, 10), (11, 20), (21, 40), (41, None))
"""Query length bins, in words, for :func:`length_evidence`."""


def length_evidence(rows: Mapping[str, Row]) -> dict[str, dict[str, Any]]:
    """Dense minus SPLADE nDCG@10 per judged query, averaged by query length (words).

    One row per corpus, and one per corpus *left out* (the queries of all the others
    pooled): the second kind is the evidence for a length rule that a corpus did not
    provide itself."""
    dense = FusionConfig(FusionMethod.RRF, {"dense": 1.0, "sparse": 0.0})
    sparse = FusionConfig(FusionMethod.RRF, {"dense": 0.0, "sparse": 1.0})
    gaps: dict[str, list[tuple[int, float]]] = {}
    for name, (rankings, _, qrels, texts) in rows.items():
        per_config = []
        for config in (dense, sparse):
            ranking = {
                q: {
                    h.id: -float(r)
                    for r, h in enumerate(config.fuse(rankings[q], limit=10), start=1)
                }
                for q in qrels
            }
            per_config.append(score_queries(qrels, ranking, [METRIC]))
        gaps[name] = [
            (len(texts[q].split()), per_config[0][q][METRIC] - per_config[1][q][METRIC])
            for q in per_config[0]
        ]

    def binned(pairs: Sequence[tuple[int, float]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for low, high in LENGTH_BINS:
            inside = [g for n, g in pairs if n >= low and (high is None or n <= high)]
            label = f"{low}-{high}" if high else f"{low}+"
            out[label] = (
                {"queries": len(inside), "dense_minus_sparse": math.fsum(inside) / len(inside)}
                if inside
                else {"queries": 0, "dense_minus_sparse": None}
            )
        return out

    evidence = {name: binned(pairs) for name, pairs in gaps.items()}
    for name in gaps:
        others = [pair for other, pairs in gaps.items() if other != name for pair in pairs]
        evidence[f"all but {name}"] = binned(others)
    return evidence


def length_markdown(evidence: Mapping[str, Mapping[str, Any]]) -> str:
    bins = list(next(iter(evidence.values())))
    lines = [
        "| queries of | " + " | ".join(f"{b} words" for b in bins) + " |",
        "|" + "---|" * (len(bins) + 1),
    ]
    for name, row in evidence.items():
        cells = [
            "" if c["queries"] == 0 else f"{c['dense_minus_sparse']:+.3f} ({c['queries']})"
            for c in row.values()
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Dense minus SPLADE nDCG@10 per judged query, averaged by query length in words "
        "(number of queries in brackets); 'all but X' pools the queries of every other corpus.",
    ]
    return "\n".join(lines)


COLUMNS = (
    "dense",
    "sparse",
    "rrf k=60",
    "dbsf 0.5",
    "convex 0.5",
    "adaptive 0.5",
    "calibrated adaptive (old default)",
)


def markdown(report: Mapping[str, Any]) -> str:
    """Corpora as rows, methods as columns (nDCG@10, and the distance to the better
    branch), the leave-one-corpus-out figure, and the mean."""
    loo = report["leave_one_corpus_out"]
    header = [
        "corpus",
        *COLUMNS,
        "default",
        "default - better branch",
        "default - convex 0.5",
        "left out: chosen",
        "left out: nDCG@10",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def cells(name: str, row: Mapping[str, float], held: Mapping[str, Any] | None) -> str:
        parts = [
            f"{row[c]:.3f}" + (f" ({margin(row, c):+.3f})" if c not in ("dense", "sparse") else "")
            for c in COLUMNS
        ]
        parts += [
            f"**{row['default']:.3f}**",
            f"{margin(row, 'default'):+.3f}",
            f"{row['default'] - row['convex 0.5']:+.3f}",
        ]
        parts += [held["chosen"], f"{held[METRIC]:.3f}"] if held else ["", ""]
        return f"| {name} | " + " | ".join(parts) + " |"

    table = report["corpora"]
    for name, row in table.items():
        lines.append(cells(name, row, loo[name]))
    mean = {
        c: math.fsum(r[c] for r in table.values()) / len(table) for c in next(iter(table.values()))
    }
    mean_loo = {"chosen": "", METRIC: math.fsum(v[METRIC] for v in loo.values()) / len(loo)}
    lines.append(cells("**mean**", mean, mean_loo))
    for name, row in report["stress"].items():
        lines.append(cells(f"_{name}_ (stress)", row, None))
    lines += [
        "",
        "nDCG@10 on each test split; in brackets, the distance to the better single branch. "
        f"Default: {report['default']}. Left out: the candidate that the protocol picks on "
        "the other real corpora (the best worst case, over those corpora, of its distance to "
        "the better of: the better branch, convex 0.5), and its score on this one. On all "
        f"real corpora it picks: {report['chosen_on_all_corpora']}. "
        "Stress rows are SciFact with one branch weakened; they are not used to choose.",
        "",
        length_markdown(report["length_evidence"]),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fusion_study"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fusion_study.json"))
    parser.add_argument("--depth", type=int, default=100, help="hits kept per branch")
    parser.add_argument("--stage", choices=["encode", "lists", "eval", "all"], default="all")
    parser.add_argument("--no-stress", action="store_true", help="skip the synthetic settings")
    args = parser.parse_args()
    folders = corpora(args.suite)
    if args.stage in ("encode", "all"):
        for folder in folders:
            encode(folder, args.cache / folder.name)
        if not args.no_stress and (args.suite / STRESS_CORPUS).is_dir():
            encode_stress(args.suite / STRESS_CORPUS, args.cache / STRESS_CORPUS)
    if args.stage in ("lists", "all"):
        for folder in folders:
            cache = args.cache / folder.name
            settings = {"plain": plain_setting(cache)}
            if folder.name == STRESS_CORPUS and not args.no_stress:
                settings.update(stress_settings(cache))
            branch_lists(cache, settings, args.depth)
    if args.stage in ("eval", "all"):
        evaluate(args.suite, args.cache, args.out)


if __name__ == "__main__":
    main()
