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

``--bm25`` adds the study pre-registered in ``docs/bm25-study-plan.md`` (issue 26):

    python benchmarks/fusion_study.py --suite ../shared/data --no-stress --bm25

``lists`` also ranks each judged query by BM25 (:class:`~hybrid_retriever.encoders.bm25.
Bm25Encoder` at each setting of :data:`BM25_SETTINGS`; exact search with Qdrant's ``IDF``
modifier, :func:`bm25_scores`), and ``eval`` scores today's two-branch pool unchanged
beside :func:`three_branch_candidates` for each setting, chooses a (BM25 setting,
candidate) pair by the same worst-case rule against that setting's own single branches,
leave-one-corpus-out, and writes ``benchmarks/results/bm25_study.json`` and ``.md``.
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

from hybrid_retriever.encoders.bm25 import DEFAULT_AVG_LEN
from hybrid_retriever.evaluation import beir_corpus, beir_qrels, beir_queries, score_queries
from hybrid_retriever.fusion.branches import ALL_BRANCHES, BM25, DENSE, SPARSE, TWO_BRANCHES
from hybrid_retriever.fusion.config import DEFAULT_FUSION_CONFIG, FusionConfig
from hybrid_retriever.fusion.methods import FusionMethod, fuse
from hybrid_retriever.fusion.query_length import BM25_FRACTION, query_length_weights
from hybrid_retriever.fusion.rrf import DEFAULT_RRF_K, BranchHit, FusedHit
from hybrid_retriever.machine import machine_info
from hybrid_retriever.search_options import DEFAULT_PREFETCH_K

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


def ranked_hits(
    doc_ids: Sequence[str], idx: Any, scores: Any, *, drop_zero: bool
) -> list[BranchHit]:
    """One query's hits of one branch, corpus ids, in rank order."""
    return [
        BranchHit(id=doc_ids[i], score=float(s))
        for i, s in zip(idx, scores, strict=True)
        if not drop_zero or s > 0
    ]


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
            branch: ranked_hits(
                doc_ids,
                arrays[f"{branch}_idx"][row],
                arrays[f"{branch}_score"][row],
                drop_zero=branch != DENSE,
            )
            for branch in TWO_BRANCHES
        }
    mrr = arrays["known_item_mrr"]
    return rankings, {"dense": float(mrr[0]), "sparse": float(mrr[1])}


# -- the BM25 branch (issue 26; pre-registered in docs/bm25-study-plan.md) ------------------------


@dataclass(frozen=True)
class Bm25Setting:
    """One point of the BM25 encoder's grid."""

    k1: float
    b: float
    avg_len: float | None = DEFAULT_AVG_LEN
    """None: the corpus's own mean kept-term count (a diagnostic, never choosable)."""

    @property
    def label(self) -> str:
        avg = "corpus mean" if self.avg_len is None else f"{self.avg_len:g}"
        return f"bm25 k1={self.k1:g} b={self.b:g}" + (
            "" if self.avg_len == DEFAULT_AVG_LEN else f" avg_len={avg}"
        )

    @property
    def file(self) -> str:
        avg = "mean" if self.avg_len is None else f"{self.avg_len:g}"
        return f"bm25_k1-{self.k1:g}_b-{self.b:g}_avg-{avg}.npz"


BM25_SETTINGS = tuple(Bm25Setting(k1, b) for k1 in (0.9, 1.2) for b in (0.4, 0.75))
"""The grid the protocol chooses among (with avg_len 256, the encoder's constant)."""
BM25_DIAGNOSTICS = tuple(Bm25Setting(s.k1, s.b, None) for s in BM25_SETTINGS)
"""The same with avg_len set to each corpus's mean: what the constant costs, shown only."""


def term_columns(vectors: Sequence[Any]) -> dict[int, int]:
    """Each hashed term of ``vectors`` -> a compact column (the hash space is 2**32)."""
    terms = np.unique(np.concatenate([np.asarray(v.indices, dtype=np.int64) for v in vectors]))
    return {int(t): i for i, t in enumerate(terms)}


def bm25_matrix(vectors: Sequence[Any], columns: Mapping[int, int]) -> Any:
    """Sparse rows over compact columns; terms no document has are dropped (they match nothing)."""
    import scipy.sparse as sp

    rows, cols, vals = [], [], []
    for row, vector in enumerate(vectors):
        for term, value in zip(vector.indices, vector.values, strict=True):
            if term in columns:
                rows.append(row)
                cols.append(columns[term])
                vals.append(value)
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(vectors), len(columns)), dtype=np.float64)


def idf(docs: Any) -> Any:
    """Qdrant's ``IDF`` modifier: ln(1 + (N - n + 0.5) / (n + 0.5)) per column, with N the
    documents and n those whose vector has the term."""
    n = np.bincount(docs.indices, minlength=docs.shape[1])
    return np.log1p((docs.shape[0] - n + 0.5) / (n + 0.5))


def bm25_scores(queries: Sequence[Any], docs: Sequence[Any]) -> Any:
    """What an exact Qdrant search of the ``IDF``-modified vector scores: the query's
    weights times each term's IDF, dot the document's weights (queries x documents)."""
    import scipy.sparse as sp

    columns = term_columns(docs)
    doc_matrix = bm25_matrix(docs, columns)
    query_matrix = bm25_matrix(queries, columns) @ sp.diags(idf(doc_matrix))
    return np.asarray((query_matrix @ doc_matrix.T).todense())


def bm25_lists(folder: Path, cache: Path, depth: int) -> None:
    """Top ``depth`` BM25 hits per judged query, per setting of the grid and diagnostic;
    and each corpus's mean kept-term count (``bm25_terms.json``)."""
    from hybrid_retriever.encoders.bm25 import Bm25Encoder

    ids = json.loads((cache / "ids.json").read_text())
    texts = {str(d.id): d.page_content for d in beir_corpus(folder)}
    documents = [texts[i] for i in ids["docs"]]
    queries = beir_queries(folder)
    query_texts = [queries[q] for q in ids["queries"]]
    terms_path = cache / "bm25_terms.json"
    if not terms_path.exists():
        counter = Bm25Encoder()
        lengths = [len(counter.term_indices(t)) for t in documents]
        terms_path.write_text(json.dumps({"mean_terms": math.fsum(lengths) / len(lengths)}))
    mean_terms = json.loads(terms_path.read_text())["mean_terms"]
    for setting in (*BM25_SETTINGS, *BM25_DIAGNOSTICS):
        path = cache / setting.file
        if path.exists():
            continue
        encoder = Bm25Encoder(k1=setting.k1, b=setting.b, avg_len=setting.avg_len or mean_terms)
        scores = timed(
            f"{cache.name} {setting.label}",
            bm25_scores,
            encoder.encode_queries(query_texts),
            encoder.encode_documents(documents),
        )
        idx, top = top_k(scores, depth)
        np.savez(path, idx=idx.astype(np.int32), score=top)


def load_bm25(cache: Path, setting: Bm25Setting) -> dict[str, list[BranchHit]]:
    """Query id -> BM25 hits in rank order; hits of score 0 (no shared term) dropped, as
    a real sparse search does not return them."""
    ids = json.loads((cache / "ids.json").read_text())
    arrays = np.load(cache / setting.file)
    return {
        query: ranked_hits(ids["docs"], arrays["idx"][row], arrays["score"][row], drop_zero=True)
        for row, query in enumerate(ids["queries"])
    }


# -- stage 3: candidates, scores, protocol -------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A label-free way to fuse some of the branches: fixed weights, weights from the
    known-item MRR, or convex weights from the query's length."""

    name: str
    method: FusionMethod
    weights: Mapping[str, float] | None = None
    """None: equal weights over ``branches``."""
    branches: tuple[str, ...] = TWO_BRANCHES
    """The branches searched; the others' lists are not passed to fusion at all."""
    rrf_k: float = DEFAULT_RRF_K
    calibrated: bool = False
    """Weights from the known-item calibration (the old default), times ``weights``."""
    length_rule: tuple[float, float] | None = None
    """(base, slope) of :func:`query_length_weights`: per-query convex weights."""
    bm25_fraction: float = BM25_FRACTION
    """The length rule's share of the lexical weight that goes to BM25 (three branches)."""
    family: str = field(default="", compare=False)

    def branch_weights(self, query: str, calibrated: Mapping[str, float]) -> dict[str, float]:
        if self.length_rule is not None:
            base, slope = self.length_rule
            return query_length_weights(
                query,
                branches=self.branches,
                base=base,
                slope=slope,
                bm25_fraction=self.bm25_fraction,
            )
        weights = dict(self.weights or dict.fromkeys(self.branches, 1.0))
        if self.calibrated:
            weights = {b: w * calibrated[b] for b, w in weights.items()}
        return weights

    def fuse(
        self,
        rankings: Mapping[str, Sequence[BranchHit]],
        query: str,
        calibrated: Mapping[str, float],
    ) -> list[FusedHit]:
        """What ``FusionConfig.fuse`` does (each list cut to the prefetch depth, a branch
        of weight 0 left unsearched), then the library's :func:`fuse`; by hand because a
        ``FusionConfig`` here names only the two original branches."""
        weights = self.branch_weights(query, calibrated)
        searched = {
            b: (list(rankings[b][:DEFAULT_PREFETCH_K]) if weights[b] > 0 else [])
            for b in self.branches
        }
        return fuse(searched, method=self.method, weights=weights, rrf_k=self.rrf_k, limit=10)


def candidates() -> list[Candidate]:
    """What the protocol chooses among: each method with a fixed dense share of the
    weight (a prior), and the old calibrated default (the two original branches)."""
    out: list[Candidate] = [
        Candidate("dense", FusionMethod.RRF, {DENSE: 1.0, SPARSE: 0.0}),
        Candidate("sparse", FusionMethod.RRF, {DENSE: 0.0, SPARSE: 1.0}),
    ]
    for rrf_k in (10.0, 20.0, 60.0):
        out.append(Candidate(f"rrf k={rrf_k:g}", FusionMethod.RRF, rrf_k=rrf_k, family="rrf"))
    for share in (0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8):
        weights = {DENSE: share, SPARSE: round(1 - share, 2)}
        for method in (FusionMethod.CONVEX, FusionMethod.DBSF, FusionMethod.ADAPTIVE):
            out.append(Candidate(f"{method.value} {share:g}", method, weights, family=method.value))
    for base in LENGTH_BASES:
        for slope in LENGTH_SLOPES:
            out.append(
                Candidate(
                    f"length {base:g}+{slope:g}",
                    FusionMethod.CONVEX,
                    length_rule=(base, slope),
                    family="length",
                )
            )
    out.append(
        Candidate(
            "calibrated adaptive (old default)",
            FusionMethod.ADAPTIVE,
            {DENSE: 1.0, SPARSE: 1.0},
            calibrated=True,
        )
    )
    return out


LENGTH_BASES = (0.45, 0.5, 0.55, 0.6)
"""Dense share at 10 words, for the query-length family (slope 0 is the fixed shares)."""
LENGTH_SLOPES = (0.025, 0.0375, 0.05, 0.075)
"""Dense share added per doubling of the query's words."""


def three_branch_candidates() -> list[Candidate]:
    """The pool the plan added, for one BM25 setting: 56 candidates (docs/bm25-study-plan.md)."""
    out: list[Candidate] = []
    subsets = {"dense+bm25": (DENSE, BM25), "sparse+bm25": (SPARSE, BM25), "all": ALL_BRANCHES}
    for label, branches in subsets.items():
        for rrf_k in (10.0, 20.0, 60.0):
            out.append(
                Candidate(
                    f"rrf {label} k={rrf_k:g}",
                    FusionMethod.RRF,
                    branches=branches,
                    rrf_k=rrf_k,
                    family="rrf3",
                )
            )
    for beta in (0.1, 0.2, 0.3, 0.4, 0.5):
        for dense_part in (0.5, 0.6, 0.7):
            weights = {
                DENSE: (1 - beta) * dense_part,
                SPARSE: (1 - beta) * (1 - dense_part),
                BM25: beta,
            }
            name = f"convex all bm25={beta:g} dense-part={dense_part:g}"
            out.append(
                Candidate(name, FusionMethod.CONVEX, weights, ALL_BRANCHES, family="convex3")
            )
    for share in (0.4, 0.5, 0.6, 0.7):
        weights = {DENSE: share, BM25: round(1 - share, 2)}
        out.append(
            Candidate(
                f"convex dense+bm25 {share:g}",
                FusionMethod.CONVEX,
                weights,
                (DENSE, BM25),
                family="convex-dense-bm25",
            )
        )
    for base in (0.45, 0.5, 0.55):
        for slope in (0.0375, 0.05):
            for fraction in (0.25, 0.5, 0.75, 1.0):
                out.append(
                    Candidate(
                        f"length all {base:g}+{slope:g} bm25-part={fraction:g}",
                        FusionMethod.CONVEX,
                        branches=ALL_BRANCHES,
                        length_rule=(base, slope),
                        bm25_fraction=fraction,
                        family="length3",
                    )
                )
    priors = {"equal": None, "0.5/0.25/0.25": {DENSE: 0.5, SPARSE: 0.25, BM25: 0.25}}
    for method in (FusionMethod.DBSF, FusionMethod.ADAPTIVE):
        for label, prior in priors.items():
            out.append(
                Candidate(
                    f"{method.value} all {label}",
                    method,
                    prior,
                    ALL_BRANCHES,
                    family=method.value + "3",
                )
            )
    return out


BM25_ONLY = Candidate("bm25", FusionMethod.RRF, branches=(BM25,))
CONVEX_EQUAL_3 = Candidate("convex all equal", FusionMethod.CONVEX, branches=ALL_BRANCHES)
"""The bar beside the single branches: equal-weight convex fusion of all three."""
REFERENCE_3 = [
    BM25_ONLY,
    CONVEX_EQUAL_3,
    Candidate("rrf dense+bm25 k=60", FusionMethod.RRF, branches=(DENSE, BM25)),
    Candidate("rrf sparse+bm25 k=60", FusionMethod.RRF, branches=(SPARSE, BM25)),
    Candidate("rrf all k=60", FusionMethod.RRF, branches=ALL_BRANCHES),
]
"""Shown for every BM25 setting, never chosen (the RRF rows are also in the pool)."""


def mean_ndcg(
    rankings: Rankings,
    qrels: Mapping[str, Mapping[str, int]],
    texts: Mapping[str, str],
    fused: Callable[[Mapping[str, Sequence[BranchHit]], str], Sequence[FusedHit]],
) -> float:
    """nDCG@10 over the judged queries of ``qrels``, each query's branch lists fused by
    ``fused(lists, query text)``; ``texts`` are the queries'."""
    ranking = {}
    for query in qrels:
        hits = fused(rankings[query], texts[query])
        ranking[query] = {h.id: -float(rank) for rank, h in enumerate(hits, start=1)}
    scores = score_queries(qrels, ranking, [METRIC])
    return math.fsum(s[METRIC] for s in scores.values()) / len(scores)


def candidate_ndcg(row: Row, candidate: Candidate) -> float:
    rankings, mrr, qrels, texts = row
    calibrated = weights_from_mrr(mrr)
    return mean_ndcg(rankings, qrels, texts, lambda lists, q: candidate.fuse(lists, q, calibrated))


def default_ndcg(row: Row) -> float:
    """Today's default, through the retriever's own ``FusionConfig.fuse``, on the two
    original branches."""
    rankings, _, qrels, texts = row
    return mean_ndcg(
        rankings,
        qrels,
        texts,
        lambda lists, q: DEFAULT_FUSION_CONFIG.fuse(
            {b: lists[b] for b in TWO_BRANCHES}, query=q, limit=10
        ),
    )


Row = tuple[Rankings, dict[str, float], dict[str, dict[str, int]], dict[str, str]]
"""A corpus or setting: branch lists, known-item MRR, qrels, query texts."""


def score_table(rows: Mapping[str, Row], pool: Sequence[Candidate]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for name, row in rows.items():
        table[name] = {c.name: candidate_ndcg(row, c) for c in pool}
        table[name]["default"] = default_ndcg(row)
        print(f"  {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in table[name].items()), flush=True)
    return table


def margin(row: Mapping[str, float], name: str) -> float:
    """How far a candidate is above the better single branch."""
    return row[name] - max(row["dense"], row["sparse"])


def lead(row: Mapping[str, float], name: str) -> float:
    """How far a candidate is above the better of the better branch and equal-weight
    convex fusion: the bar the default must clear on every corpus."""
    return row[name] - max(row["dense"], row["sparse"], row["convex 0.5"])


Leads = Mapping[str, Mapping[str, float]]
"""Corpus -> candidate -> its lead over the bar the default must clear there."""


def choose(
    table: Mapping[str, Mapping[str, float]], corpora_: Sequence[str], pool: Sequence[str]
) -> str:
    """The two-branch study's choice: :func:`choose_by_leads` with :func:`lead`."""
    leads = {c: {name: lead(table[c], name) for name in pool} for c in corpora_}
    return choose_by_leads(leads, corpora_, pool)


def choose_by_leads(leads: Leads, corpora_: Sequence[str], pool: Sequence[str]) -> str:
    """The candidate with the best worst-case lead over ``corpora_`` (ties within
    0.001: the better mean). Worst case, because the default must hold on every corpus."""
    return ranked(leads, corpora_, pool)[0][0]


def ranked(
    leads: Leads, corpora_: Sequence[str], pool: Sequence[str]
) -> list[tuple[str, float, float]]:
    """(candidate, worst lead rounded to 0.001, mean lead), best first by :func:`choose`'s
    rule (a stable sort: among equals, the first in ``pool``, as ``max`` picks)."""

    def key(name: str) -> tuple[float, float]:
        margins = [leads[c][name] for c in corpora_]
        return (round(min(margins), 3), math.fsum(margins) / len(margins))

    return [(name, *key(name)) for name in sorted(pool, key=key, reverse=True)]


def leave_one_corpus_out(
    table: Mapping[str, Mapping[str, float]], leads: Leads, real: Sequence[str], pool: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """For each corpus: the candidate chosen on the others, and its score on this one."""
    out = {}
    for held_out in real:
        chosen = choose_by_leads(leads, [c for c in real if c != held_out], pool)
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
    leads = {c: {name: lead(table[c], name) for name in choosable} for c in real}
    loo = leave_one_corpus_out(table, leads, real, choosable)
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


# -- the BM25 study: (BM25 setting, candidate) pairs, chosen out of sample -----------------------

TODAY_IN_SAMPLE_MEAN = 0.550
"""Today's default, in-sample mean over the six corpora: the plan's condition 3 adds 0.01."""
QDRANT_SCIFACT_ANCHOR = 0.7175
SINGLES = ("dense", "sparse")


def pair_name(setting: Bm25Setting, candidate: str) -> str:
    return f"{setting.label} | {candidate}"


def corpus_scores(folder: Path, cache: Path) -> dict[str, Any]:
    """Every candidate's nDCG@10 on one corpus: the two-branch pool once, the BM25 pool
    and references per BM25 setting, and the avg_len diagnostic."""
    rankings, mrr = load_lists(cache, "plain")
    qrels, texts = beir_qrels(folder, "test"), beir_queries(folder)
    row: Row = (rankings, mrr, qrels, texts)
    three = {c.name: c for c in [*REFERENCE_3, *three_branch_candidates()]}

    def with_bm25(setting: Bm25Setting) -> Row:
        bm25 = load_bm25(cache, setting)
        return ({q: {**lists, BM25: bm25[q]} for q, lists in rankings.items()}, mrr, qrels, texts)

    entry: dict[str, Any] = {
        "two_branch": {c.name: candidate_ndcg(row, c) for c in candidates()},
        "default": default_ndcg(row),
        "bm25": {},
        "mean_terms": json.loads((cache / "bm25_terms.json").read_text())["mean_terms"],
        "bm25_avg_len_corpus_mean": {},
    }
    for setting, diagnostic in zip(BM25_SETTINGS, BM25_DIAGNOSTICS, strict=True):
        three_row = with_bm25(setting)
        entry["bm25"][setting.label] = {n: candidate_ndcg(three_row, c) for n, c in three.items()}
        entry["bm25_avg_len_corpus_mean"][setting.label] = candidate_ndcg(
            with_bm25(diagnostic), BM25_ONLY
        )
        print(f"  {folder.name} {setting.label}: bm25 {entry['bm25'][setting.label]['bm25']:.3f}")
    return entry


def pair_tables(
    table: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]], dict[str, str]]:
    """Per corpus, each choosable (setting, candidate) pair's nDCG@10 and lead over its own
    setting's bar (the best of dense, SPLADE, that BM25, equal-weight convex of all three);
    and each pair's BM25 setting's label."""
    two = [c.name for c in candidates() if c.name not in SINGLES]
    three = [c.name for c in three_branch_candidates()]
    scores: dict[str, dict[str, float]] = {}
    leads: dict[str, dict[str, float]] = {}
    setting_of: dict[str, str] = {}
    for corpus, entry in table.items():
        scores[corpus], leads[corpus] = {}, {}
        for setting in BM25_SETTINGS:
            own = entry["bm25"][setting.label]
            bar = max(
                entry["two_branch"]["dense"],
                entry["two_branch"]["sparse"],
                own["bm25"],
                own[CONVEX_EQUAL_3.name],
            )
            for name in two + three:
                pair = pair_name(setting, name)
                value = entry["two_branch"][name] if name in two else own[name]
                scores[corpus][pair], leads[corpus][pair] = value, value - bar
                setting_of[pair] = setting.label
    return scores, leads, setting_of


def best_single(entry: Mapping[str, Any], settings: Sequence[str]) -> float:
    """The best of dense, SPLADE and BM25 at any of ``settings``."""
    two = entry["two_branch"]
    return float(max(two["dense"], two["sparse"], *(entry["bm25"][s]["bm25"] for s in settings)))


def conditions(
    table: Mapping[str, Mapping[str, Any]],
    loo: Mapping[str, Mapping[str, Any]],
    chosen: str,
    setting_of: Mapping[str, str],
    scores: Mapping[str, Mapping[str, float]],
) -> dict[str, Any]:
    """The plan's conditions for a three-branch default, those this study can measure.

    Condition 2's best single branch is dense, SPLADE and the BM25 of the left-out pair's
    own setting, as the selection rule judges a pair; ``..._any_setting`` is the stricter
    reading (BM25 at whichever setting is best on that corpus), shown beside it."""
    three = {c.name for c in three_branch_candidates()}
    per_corpus = {}
    for corpus, held in loo.items():
        own = best_single(table[corpus], [setting_of[held["chosen"]]])
        anywhere = best_single(table[corpus], [s.label for s in BM25_SETTINGS])
        per_corpus[corpus] = {
            "left_out": held[METRIC],
            "best_single_own_setting": own,
            "minus_best_single_own_setting": held[METRIC] - own,
            "best_single_any_setting": anywhere,
            "minus_best_single_any_setting": held[METRIC] - anywhere,
        }
    mean_loo = math.fsum(v[METRIC] for v in loo.values()) / len(loo)
    scifact = scores.get("scifact", {}).get(chosen)
    return {
        "1_uses_bm25": chosen.split(" | ", 1)[1] in three,
        "2_left_out_within_0.005_of_best_single": all(
            v["minus_best_single_own_setting"] >= -TOLERANCE for v in per_corpus.values()
        ),
        "2_strict_any_setting": all(
            v["minus_best_single_any_setting"] >= -TOLERANCE for v in per_corpus.values()
        ),
        "2_per_corpus": per_corpus,
        "3_left_out_mean": mean_loo,
        "3_left_out_mean_at_least": TODAY_IN_SAMPLE_MEAN + 0.01,
        "3_holds": round(mean_loo, 3) >= TODAY_IN_SAMPLE_MEAN + 0.01,
        "4_proxy_scifact_in_study": scifact,
        "4_proxy_holds": scifact is not None and scifact >= QDRANT_SCIFACT_ANCHOR,
        "4_note": "the plan's condition is SciFact through `hybrid-retriever eval`; this is "
        "the study's own exact-search figure for the pair chosen on all six corpora",
        "5_cost": "not measured by this study (speed benchmarks)",
    }


def evaluate_bm25(suite: Path, cache: Path, out: Path) -> dict[str, Any]:
    print("scoring (BM25 study)", flush=True)
    table = {folder.name: corpus_scores(folder, cache / folder.name) for folder in corpora(suite)}
    real = list(table)
    scores, leads, setting_of = pair_tables(table)
    pool = list(next(iter(scores.values())))
    chosen = choose_by_leads(leads, real, pool)
    loo = leave_one_corpus_out(scores, leads, real, pool)
    report = {
        "plan": "docs/bm25-study-plan.md",
        "suite": [str(p) for p in corpora(suite)],
        "metric": METRIC,
        "split": "test",
        "depth": "top 100 per branch (exact search), cut to DEFAULT_PREFETCH_K by fusion",
        "bm25_settings": [s.label for s in BM25_SETTINGS],
        "pool_size": len(pool),
        "default": DEFAULT_FUSION_CONFIG.describe(),
        "chosen_on_all_corpora": chosen,
        "chosen_on_all_corpora_in_sample": {c: scores[c][chosen] for c in real},
        "chosen_on_all_corpora_leads": {c: leads[c][chosen] for c in real},
        "runners_up_on_all_corpora": [
            {"pair": name, "worst_lead": worst, "mean_lead": mean}
            for name, worst, mean in ranked(leads, real, pool)[:10]
        ],
        "leave_one_corpus_out": loo,
        "conditions": conditions(table, loo, chosen, setting_of, scores),
        "corpora": table,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(bm25_markdown(report) + "\n")
    print(bm25_markdown(report))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return report


def bm25_markdown(report: Mapping[str, Any]) -> str:
    """The headline table (left-out figures), the branches and pairs per BM25 setting,
    and the plan's conditions."""
    table, loo, chosen = (
        report["corpora"],
        report["leave_one_corpus_out"],
        report["chosen_on_all_corpora"],
    )
    settings = report["bm25_settings"]
    in_sample = report["chosen_on_all_corpora_in_sample"]
    cond = report["conditions"]
    proxy = cond["4_proxy_scifact_in_study"]
    scifact = "none" if proxy is None else f"{proxy:.3f}"
    header = [
        "corpus",
        "dense",
        "SPLADE",
        *(f"BM25 {s.removeprefix('bm25 ')}" for s in settings),
        "today's default",
        "chosen, in-sample",
        "**left out**",
        "left out - best single",
        "chosen on the other five",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    columns: list[list[float]] = []
    for corpus, entry in table.items():
        values = [
            entry["two_branch"]["dense"],
            entry["two_branch"]["sparse"],
            *(entry["bm25"][s]["bm25"] for s in settings),
            entry["default"],
            in_sample[corpus],
            loo[corpus][METRIC],
        ]
        columns.append(values)
        gap = cond["2_per_corpus"][corpus]["minus_best_single_own_setting"]
        cells = [f"{v:.3f}" for v in values[:-1]] + [f"**{values[-1]:.3f}**", f"{gap:+.3f}"]
        chosen_here = loo[corpus]["chosen"].replace("|", "\\|")
        lines.append(f"| {corpus} | " + " | ".join(cells) + f" | {chosen_here} |")
    means = [math.fsum(col) / len(col) for col in zip(*columns, strict=True)]
    lines.append("| **mean** | " + " | ".join(f"{m:.3f}" for m in means) + " | | |")
    lines += [
        "",
        f"nDCG@10, test splits. Chosen on all six corpora (in-sample): {chosen}. Left out: "
        "the (BM25 setting, candidate) pair chosen on the other five corpora, scored on this "
        f"one. Today's default: {report['default']}.",
        "",
    ]
    for setting in settings:
        lines += [f"### {setting}", ""]
        names = ["bm25", "rrf dense+bm25 k=60", "rrf sparse+bm25 k=60", "rrf all k=60"]
        head = [
            "corpus",
            "BM25",
            "RRF dense+SPLADE",
            "RRF dense+BM25",
            "RRF SPLADE+BM25",
            "RRF all three",
            "convex all equal",
            "BM25, avg_len = corpus mean",
            "mean kept terms",
        ]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for corpus, entry in table.items():
            own = entry["bm25"][setting]
            values = [
                own["bm25"],
                entry["two_branch"]["rrf k=60"],
                *(own[n] for n in names[1:]),
                own[CONVEX_EQUAL_3.name],
                entry["bm25_avg_len_corpus_mean"][setting],
            ]
            cells = [f"{v:.3f}" for v in values] + [f"{entry['mean_terms']:.0f}"]
            lines.append(f"| {corpus} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "### The plan's conditions for a three-branch default",
        "",
        f"1. uses the BM25 branch: **{cond['1_uses_bm25']}**",
        "2. left out >= best single branch - 0.005 on every corpus: "
        f"**{cond['2_left_out_within_0.005_of_best_single']}** (best single over every BM25 "
        f"setting: {cond['2_strict_any_setting']})",
        f"3. left-out mean {cond['3_left_out_mean']:.3f} >= "
        f"{cond['3_left_out_mean_at_least']:.3f}: **{cond['3_holds']}**",
        "4. SciFact >= 0.7175 (proxy: this study's in-sample SciFact figure "
        f"{scifact}): {cond['4_proxy_holds']}; through `hybrid-retriever eval`: not measured here",
        f"5. cost: {cond['5_cost']}",
    ]
    return "\n".join(lines)


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


FUSION_OUT = Path("benchmarks/results/fusion_study.json")
BM25_OUT = Path("benchmarks/results/bm25_study.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fusion_study"))
    parser.add_argument("--out", type=Path, default=FUSION_OUT)
    parser.add_argument("--depth", type=int, default=100, help="hits kept per branch")
    parser.add_argument("--stage", choices=["encode", "lists", "eval", "all"], default="all")
    parser.add_argument("--no-stress", action="store_true", help="skip the synthetic settings")
    parser.add_argument(
        "--bm25",
        action="store_true",
        help="the BM25 study of docs/bm25-study-plan.md (default --out: bm25_study.json)",
    )
    args = parser.parse_args()
    if args.bm25 and args.out == FUSION_OUT:
        args.out = BM25_OUT
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
            if args.bm25:
                bm25_lists(folder, cache, args.depth)
    if args.stage in ("eval", "all"):
        (evaluate_bm25 if args.bm25 else evaluate)(args.suite, args.cache, args.out)


if __name__ == "__main__":
    main()
