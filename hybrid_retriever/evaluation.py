"""Evaluation on BEIR-format data: load a dataset, run a retriever, score it with ranx.

BEIR layout (Thakur et al., 2021, https://arxiv.org/abs/2104.08663): a folder with
``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``,
``text``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``).
Metrics come from ranx (Bassani, ECIR 2022), not hand-written code.
"""

from __future__ import annotations

import csv
import gzip
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from hybrid_retriever.errors import InvalidDocumentError

DOC_ID_KEY = "doc_id"
"""Metadata key that carries the BEIR document id through the collection."""

DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10")


@dataclass
class RunResult:
    """One retrieval run: ranked BEIR doc ids per query, and per-query latency."""

    ranking: dict[str, dict[str, float]] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSON-lines file (optionally gzipped); errors name the file and line."""
    with _open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidDocumentError(
                    f"{path}:{line_number}: not valid JSON ({exc.msg})."
                ) from exc
            if not isinstance(record, dict):
                raise InvalidDocumentError(f"{path}:{line_number}: expected a JSON object.")
            yield record


def _first_existing(folder: Path, *names: str) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder} has none of {', '.join(names)}; is it a BEIR dataset?")


def beir_corpus(folder: Path) -> Iterator[Document]:
    """The corpus as Documents, streamed: text is ``title + " " + text``, as BEIR encodes it."""
    path = _first_existing(folder, "corpus.jsonl", "corpus.jsonl.gz")
    for record in read_jsonl(path):
        title = str(record.get("title") or "").strip()
        body = str(record.get("text") or "").strip()
        doc_id = str(record["_id"])
        yield Document(
            id=doc_id,
            page_content=f"{title} {body}".strip(),
            metadata={DOC_ID_KEY: doc_id, "title": title},
        )


def beir_queries(folder: Path) -> dict[str, str]:
    path = _first_existing(folder, "queries.jsonl", "queries.jsonl.gz")
    return {str(r["_id"]): str(r["text"]) for r in read_jsonl(path)}


def beir_qrels(folder: Path, split: str) -> dict[str, dict[str, int]]:
    """Relevance judgements of one split: query id -> doc id -> grade."""
    path = folder / "qrels" / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; available splits: "
            f"{sorted(p.stem for p in (folder / 'qrels').glob('*.tsv'))}"
        )
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return qrels


def run_retriever(
    retriever: BaseRetriever,
    queries: Mapping[str, str],
    *,
    ignore_identical_ids: bool = False,
    **search_kwargs: Any,
) -> RunResult:
    """Run every query one at a time (so latencies are per query).

    The score given to ranx is ``-rank``, so ranx sees exactly the retriever's order.
    """
    result = RunResult()
    for query_id, text in queries.items():
        start = time.perf_counter()
        documents = retriever.invoke(text, **search_kwargs)
        result.latencies_ms.append((time.perf_counter() - start) * 1000)
        ranked = [str(d.metadata.get(DOC_ID_KEY, d.id)) for d in documents]
        if ignore_identical_ids:
            ranked = [doc_id for doc_id in ranked if doc_id != query_id]
        result.ranking[query_id] = {
            doc_id: -float(rank) for rank, doc_id in enumerate(ranked, start=1)
        }
    return result


def score_run(
    qrels: Mapping[str, Mapping[str, int]],
    ranking: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, float]:
    """Mean of each metric over the judged queries, computed by ranx."""
    from ranx import Qrels, Run, evaluate

    judged = {q: dict(docs) for q, docs in qrels.items() if q in ranking}
    run = {q: dict(ranking[q]) or {"__none__": 0.0} for q in judged}
    scores = evaluate(Qrels(judged), Run(run), list(metrics), make_comparable=True)
    if isinstance(scores, float):
        return {metrics[0]: scores}
    return {name: float(value) for name, value in scores.items()}
