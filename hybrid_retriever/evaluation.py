"""Evaluation on BEIR-format data: load a dataset, run a retriever, score it with ranx.

BEIR layout (Thakur et al., 2021, https://arxiv.org/abs/2104.08663): a folder with
``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``,
``text``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``).
Metrics come from ranx (Bassani, ECIR 2022), not hand-written code.

:func:`load_beir` checks a dataset before anything is indexed: judgements that name
documents or queries the dataset does not have would silently lower every score.
:data:`DEFAULT_RUNS` is the list of retrieval runs an evaluation compares; a new
fusion method is one more entry there.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from hybrid_retriever.errors import HybridRetrieverError, InvalidDocumentError
from hybrid_retriever.fusion.config import DEFAULT_FUSION_CONFIG
from hybrid_retriever.fusion.methods import FusionMethod
from hybrid_retriever.sources import (
    BEIR_CORPUS_FILES,
    DOC_ID_KEY,
    Source,
    SourceKind,
    SourceNotFoundError,
    numbered_jsonl,
    read_jsonl,
)

__all__ = [
    "DEFAULT_DEPTH",
    "DEFAULT_METRICS",
    "DEFAULT_RUNS",
    "DOC_ID_KEY",
    "BeirDataset",
    "DatasetError",
    "RunResult",
    "RunSpec",
    "SourceNotFoundError",
    "beir_corpus",
    "beir_qrels",
    "beir_queries",
    "load_beir",
    "metric_names",
    "percentile",
    "read_jsonl",
    "run_retriever",
    "score_queries",
    "score_run",
]

DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10")
DEFAULT_DEPTH = 100
"""Documents retrieved per query: Recall@100 needs 100."""


class DatasetError(HybridRetrieverError, ValueError):
    """A dataset's parts disagree, e.g. judgements that name documents not in the corpus."""


@dataclass(frozen=True)
class RunSpec:
    """One retrieval run of an evaluation: a name and the search options that make it."""

    name: str
    options: Mapping[str, Any]
    """Per-call search options for ``HybridRetriever.invoke`` (weights, rrf_k, ...)."""
    description: str = ""


DEFAULT_RUNS: tuple[RunSpec, ...] = (
    RunSpec("dense", {"weights": {"dense": 1.0, "sparse": 0.0}}, "dense branch only"),
    RunSpec("sparse", {"weights": {"dense": 0.0, "sparse": 1.0}}, "SPLADE branch only"),
    RunSpec(
        "hybrid",
        {},
        f"both branches, the default fusion: {DEFAULT_FUSION_CONFIG.describe()}",
    ),
    RunSpec("rrf", {"fusion": FusionMethod.RRF.value}, "reciprocal rank fusion, k=60"),
    RunSpec("dbsf", {"fusion": FusionMethod.DBSF.value}, "Qdrant's distribution-based fusion"),
    RunSpec(
        "convex",
        {"fusion": FusionMethod.CONVEX.value, "weights": {"dense": 0.5, "sparse": 0.5}},
        "min-max scores, convex, alpha 0.5",
    ),
    RunSpec(
        "adaptive",
        {"fusion": FusionMethod.ADAPTIVE.value, "weights": {"dense": 1.0, "sparse": 1.0}},
        "adaptive fusion with equal branch weights",
    ),
)
"""``hybrid`` is what a retriever does with no fusion options (:data:`DEFAULT_FUSION_CONFIG`);
the other runs name their method and weights explicitly."""


def metric_names(k: int = 10, *, recall_depth: int = DEFAULT_DEPTH) -> tuple[str, ...]:
    """The reported metrics: nDCG and MRR at the cutoff ``k``, recall at ``recall_depth``."""
    return (f"ndcg@{k}", f"recall@{recall_depth}", f"mrr@{k}")


@dataclass
class RunResult:
    """One retrieval run: ranked BEIR doc ids per query, and per-query latency."""

    ranking: dict[str, dict[str, float]] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)

    def ranked_ids(self, query_id: str) -> list[str]:
        """The doc ids of one query, best first."""
        scores = self.ranking.get(query_id, {})
        return sorted(scores, key=lambda doc_id: -scores[doc_id])


# -- loading -------------------------------------------------------------------------------------


def _first_existing(folder: Path, *names: str) -> Path:
    if not folder.is_dir():
        raise SourceNotFoundError(
            f"{folder} does not exist."
            if not folder.exists()
            else f"{folder} is a file; give the BEIR dataset folder."
        )
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise SourceNotFoundError(f"{folder} has none of {', '.join(names)}; is it a BEIR dataset?")


def beir_corpus(folder: Path) -> Iterator[Document]:
    """The corpus as Documents, streamed: text is ``title + " " + text``, as BEIR encodes it."""
    return iter(Source(_first_existing(folder, *BEIR_CORPUS_FILES), SourceKind.BEIR))


def beir_queries(folder: Path) -> dict[str, str]:
    """Query id -> text, for every query in ``queries.jsonl``."""
    path = _first_existing(folder, "queries.jsonl", "queries.jsonl.gz")
    queries: dict[str, str] = {}
    for line_number, record in numbered_jsonl(path):
        query_id, text = record.get("_id"), record.get("text")
        if query_id is None or not isinstance(text, str):
            raise InvalidDocumentError(
                f"{path}:{line_number}: a query needs '_id' and a 'text' string."
            )
        queries[str(query_id)] = text
    return queries


def beir_qrels(folder: Path, split: str) -> dict[str, dict[str, int]]:
    """Relevance judgements of one split: query id -> doc id -> grade."""
    path = folder / "qrels" / f"{split}.tsv"
    if not path.is_file():
        if not folder.is_dir():
            raise SourceNotFoundError(f"{folder} does not exist or is not a folder.")
        raise SourceNotFoundError(
            f"{path} does not exist; available splits: "
            f"{sorted(p.stem for p in (folder / 'qrels').glob('*.tsv'))}"
        )
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = {"query-id", "corpus-id", "score"} - set(reader.fieldnames or ())
        if missing:
            raise InvalidDocumentError(
                f"{path}:1: the header lacks {sorted(missing)}; a BEIR qrels file starts with "
                "'query-id<TAB>corpus-id<TAB>score'."
            )
        for row in reader:
            try:
                grade = int(row["score"])
            except (TypeError, ValueError):
                raise InvalidDocumentError(
                    f"{path}:{reader.line_num}: score {row['score']!r} is not an integer "
                    "(expected query-id<TAB>corpus-id<TAB>score)."
                ) from None
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = grade
    return qrels


@dataclass(frozen=True)
class BeirDataset:
    """A checked BEIR dataset: the judged queries of one split, and where the corpus is."""

    folder: Path
    split: str
    corpus_path: Path
    num_docs: int
    queries: dict[str, str]
    """Only the queries that ``qrels`` judges, in file order."""
    qrels: dict[str, dict[str, int]]

    @property
    def name(self) -> str:
        return self.folder.resolve().name

    def corpus(self) -> Iterator[Document]:
        """The corpus, streamed again (see :func:`beir_corpus`)."""
        return iter(Source(self.corpus_path, SourceKind.BEIR))


def load_beir(folder: Path, split: str = "test") -> BeirDataset:
    """Load and check a BEIR dataset; the corpus is read once to count and collect its ids.

    Raises :class:`DatasetError` naming the ids when the judgements mention documents
    that are not in the corpus or queries that are not in ``queries.jsonl``.
    """
    folder = Path(folder)
    corpus_path = _first_existing(folder, *BEIR_CORPUS_FILES)
    all_queries = beir_queries(folder)
    qrels = beir_qrels(folder, split)
    doc_ids = {str(d.id) for d in Source(corpus_path, SourceKind.BEIR)}
    problems = []
    qrels_name = f"qrels/{split}.tsv"
    unknown_docs = sorted({d for judged in qrels.values() for d in judged} - doc_ids)
    if unknown_docs:
        problems.append(_unknown(unknown_docs, "document", corpus_path.name))
    unknown_queries = sorted(set(qrels) - set(all_queries))
    if unknown_queries:
        problems.append(_unknown(unknown_queries, "query", "queries.jsonl"))
    if problems:
        raise DatasetError(
            f"{folder / qrels_name} names {' and '.join(problems)}. Judgements must refer to "
            "the dataset's own ids; check that the files belong together."
        )
    return BeirDataset(
        folder=folder,
        split=split,
        corpus_path=corpus_path,
        num_docs=len(doc_ids),
        queries={q: text for q, text in all_queries.items() if q in qrels},
        qrels=qrels,
    )


def _unknown(ids: Sequence[str], kind: str, where: str, shown: int = 10) -> str:
    """``3 document ids that are not in corpus.jsonl ('a', 'b', 'c')``."""
    listed = ", ".join(repr(i) for i in ids[:shown])
    if len(ids) > shown:
        listed += f", ... ({len(ids) - shown} more)"
    many = len(ids) != 1
    return (
        f"{len(ids)} {kind} id{'s' if many else ''} that {'are' if many else 'is'} not in "
        f"{where} ({listed})"
    )


# -- running -------------------------------------------------------------------------------------


def run_retriever(
    retriever: BaseRetriever,
    queries: Mapping[str, str],
    *,
    ignore_identical_ids: bool = False,
    show_progress: bool = False,
    description: str = "queries",
    **search_kwargs: Any,
) -> RunResult:
    """Run every query one at a time (so latencies are per query).

    The score given to ranx is ``-rank``, so ranx sees exactly the retriever's order.
    ``ignore_identical_ids`` drops a document whose id is the query's own id (the BEIR
    convention for ArguAna and Quora, where queries are also corpus documents); one
    extra document is retrieved so that ``k`` are still returned.
    """
    from tqdm.auto import tqdm

    result = RunResult()
    k = search_kwargs.get("k")
    if ignore_identical_ids and isinstance(k, int):
        search_kwargs = {**search_kwargs, "k": k + 1}
    items = tqdm(
        queries.items(),
        total=len(queries),
        desc=description,
        unit="query",
        disable=not show_progress,
        delay=0.5,
    )
    for query_id, text in items:
        start = time.perf_counter()
        documents = retriever.invoke(text, **search_kwargs)
        result.latencies_ms.append((time.perf_counter() - start) * 1000)
        ranked = [str(d.metadata.get(DOC_ID_KEY, d.id)) for d in documents]
        if ignore_identical_ids:
            ranked = [doc_id for doc_id in ranked if doc_id != query_id]
            if isinstance(k, int):
                ranked = ranked[:k]
        result.ranking[query_id] = {
            doc_id: -float(rank) for rank, doc_id in enumerate(ranked, start=1)
        }
    return result


# -- scoring -------------------------------------------------------------------------------------


def score_queries(
    qrels: Mapping[str, Mapping[str, int]],
    ranking: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, dict[str, float]]:
    """Each judged query's score on each metric (query id -> metric -> value), by ranx.

    Queries judged but missing from ``ranking`` are left out; a query that retrieved
    nothing scores 0.
    """
    from ranx import Qrels, Run, evaluate

    judged = {q: dict(docs) for q, docs in qrels.items() if q in ranking}
    if not judged:
        return {}
    run = Run({q: dict(ranking[q]) or {"__none__": 0.0} for q in judged})
    evaluate(Qrels(judged), run, list(metrics), save_results_in_run=True)
    return {q: {m: float(run.scores[m][q]) for m in metrics} for q in judged}


def score_run(
    qrels: Mapping[str, Mapping[str, int]],
    ranking: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, float]:
    """Mean of each metric over the judged queries, computed by ranx."""
    per_query = score_queries(qrels, ranking, metrics)
    if not per_query:
        return {m: 0.0 for m in metrics}
    return {m: math.fsum(s[m] for s in per_query.values()) / len(per_query) for m in metrics}


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolated linearly as numpy's default does."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
