"""Evaluation on BEIR-format data: load a dataset, run a retriever, score it with ranx.

BEIR layout (Thakur et al., 2021, https://arxiv.org/abs/2104.08663): a folder with
``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``,
``text``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``).
Metrics come from ranx (Bassani, ECIR 2022), not hand-written code.

:func:`load_beir` reads a dataset as it ships and never stops on its quirks (empty
documents, judgements naming documents the corpus lacks, ...): it handles each as BEIR's
evaluation does and lists them (:mod:`hybrid_retriever.quirks`), so that scores stay
comparable with published ones and the report says what was met.
:func:`default_runs` lists the retrieval runs an evaluation compares, for the branches a
retriever has; a new fusion method is one more entry there.
"""

from __future__ import annotations

import csv
import hashlib
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from hybrid_retriever.branch_lists import hit_id, search_branches, stored_hit_id
from hybrid_retriever.errors import (
    HybridRetrieverError,
    InvalidDocumentError,
    InvalidParameterError,
)
from hybrid_retriever.fusion.branches import ALL_BRANCHES, BM25, DENSE, SPARSE, TWO_BRANCHES
from hybrid_retriever.fusion.config import DEFAULT_FUSION_CONFIG
from hybrid_retriever.fusion.methods import DEFAULT_FUSION, FusionMethod
from hybrid_retriever.metadata_keys import DOC_ID_KEY
from hybrid_retriever.quirks import SHOWN, Quirk, QuirkKind, file_quirks, listed, plural, quirk
from hybrid_retriever.scoring import DEFAULT_METRICS, quiet_ranx, score_queries
from hybrid_retriever.sources import (
    BEIR_CORPUS_FILES,
    Rejected,
    Source,
    SourceKind,
    SourceNotFoundError,
    numbered_jsonl,
    open_text,
    read_jsonl,
)

if TYPE_CHECKING:
    from hybrid_retriever.retriever import HybridRetriever

__all__ = [
    "DEFAULT_DEPTH",
    "DEFAULT_METRICS",
    "DEFAULT_RUN",
    "DEFAULT_RUNS",
    "DOC_ID_KEY",
    "RUN_NAMES",
    "BeirDataset",
    "DatasetError",
    "QrelsFile",
    "RunResult",
    "RunSpec",
    "SourceNotFoundError",
    "beir_corpus",
    "beir_qrels",
    "beir_queries",
    "default_runs",
    "latency_sample",
    "load_beir",
    "metric_names",
    "percentile",
    "qrels_path",
    "quiet_ranx",
    "read_jsonl",
    "read_qrels",
    "run_from_one_search",
    "run_retriever",
    "score_queries",
    "score_run",
    "time_runs",
]

DEFAULT_DEPTH = 100
"""Documents retrieved per query: Recall@100 needs 100."""


class DatasetError(HybridRetrieverError, ValueError):
    """A dataset's parts disagree, e.g. judgements that name documents not in the corpus."""


DEFAULT_RUN = DEFAULT_FUSION.value
"""The run that searches as a retriever does by default: named after the default fusion,
as ``fusion="convex"`` in Python and ``--fusion convex`` on the command line are."""


@dataclass(frozen=True)
class RunSpec:
    """One retrieval run of an evaluation: a name and the search options that make it."""

    name: str
    options: Mapping[str, Any]
    """Per-call search options for ``HybridRetriever.invoke`` (weights, rrf_k, ...)."""
    description: str = ""


BRANCH_LABELS = {DENSE: "dense", SPARSE: "SPLADE", BM25: "BM25"}


def default_runs(branches: Sequence[str] = TWO_BRANCHES) -> tuple[RunSpec, ...]:
    """The runs an evaluation compares for a retriever with ``branches`` (see
    :func:`~hybrid_retriever.branch_lists.retriever_branches`): each branch alone, the
    default fusion (:data:`DEFAULT_RUN`, options ``{}``: exactly what ``invoke`` does),
    then each other method over all the branches with equal weights.

    Every run but the default names its branches (and weights) in full, so that it means
    the same on every retriever that has them: a branch's weight left out counts as 1,
    and a search fuses all the retriever's branches unless told which.
    """
    named = tuple(b for b in ALL_BRANCHES if b in branches)
    unknown = sorted(set(branches) - set(ALL_BRANCHES))
    if unknown or len(named) < 2 or DENSE not in named or SPARSE not in named:
        raise InvalidParameterError(
            f"branches must be {list(TWO_BRANCHES)} or {list(ALL_BRANCHES)}, got {list(branches)}."
        )
    together = " + ".join(BRANCH_LABELS[b] for b in named)
    every = {"branches": list(named)}
    return (
        *(
            RunSpec(branch, {"branches": [branch]}, f"{BRANCH_LABELS[branch]} branch only")
            for branch in named
        ),
        RunSpec(
            DEFAULT_RUN,
            {},
            f"{together}, the default fusion: {DEFAULT_FUSION_CONFIG.describe()}",
        ),
        RunSpec(
            "rrf",
            {**every, "fusion": FusionMethod.RRF.value},
            f"{together}, reciprocal rank fusion, k=60",
        ),
        RunSpec(
            "dbsf",
            {**every, "fusion": FusionMethod.DBSF.value},
            f"{together}, Qdrant's distribution-based fusion",
        ),
        RunSpec(
            "convex-0.5",
            {**every, "fusion": FusionMethod.CONVEX.value, "weights": dict.fromkeys(named, 0.5)},
            f"{together}, min-max scores, convex, equal weights",
        ),
        RunSpec(
            "adaptive",
            {**every, "fusion": FusionMethod.ADAPTIVE.value, "weights": dict.fromkeys(named, 1.0)},
            f"{together}, adaptive fusion with equal branch weights",
        ),
    )


DEFAULT_RUNS: tuple[RunSpec, ...] = default_runs(TWO_BRANCHES)
"""The runs for a retriever with the two original branches; with BM25,
``default_runs(retriever_branches(retriever))`` adds ``bm25`` and fuses three branches.
``convex`` is what a retriever does with no fusion options (:data:`DEFAULT_FUSION_CONFIG`:
convex fusion with the query-length weights); the other runs name their method and weights
explicitly (``convex-0.5``: the same method with equal weights)."""

RUN_NAMES: tuple[str, ...] = tuple(spec.name for spec in default_runs(ALL_BRANCHES))
"""Every run name an evaluation may report, whatever the branches."""


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
    """Query id -> text, for every query in ``queries.jsonl`` (an empty text stays empty)."""
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


def qrels_path(folder: Path, split: str) -> Path:
    """``qrels/<split>.tsv`` (or ``.tsv.gz``), or an error listing the splits there are."""
    for name in (f"{split}.tsv", f"{split}.tsv.gz"):
        if (folder / "qrels" / name).is_file():
            return folder / "qrels" / name
    if not folder.is_dir():
        raise SourceNotFoundError(f"{folder} does not exist or is not a folder.")
    splits = sorted(p.name.split(".")[0] for p in (folder / "qrels").glob("*.tsv*"))
    raise SourceNotFoundError(
        f"{folder / 'qrels' / f'{split}.tsv'} does not exist; available splits: {splits}"
    )


@dataclass(frozen=True)
class QrelsFile:
    """A qrels file as read: the judgements, and what was odd about them."""

    qrels: dict[str, dict[str, int]]
    repeated: list[str] = field(default_factory=list)
    """``query/doc`` pairs judged more than once (the last grade is kept)."""
    non_positive: int = 0
    """Judgements with grade 0 or below."""


def read_qrels(path: Path) -> QrelsFile:
    """Relevance judgements from a BEIR qrels file; errors name the file and line."""
    qrels: dict[str, dict[str, int]] = {}
    repeated: list[str] = []
    non_positive = 0
    with open_text(path, newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = {"query-id", "corpus-id", "score"} - set(reader.fieldnames or ())
        if missing:
            raise InvalidDocumentError(
                f"{path}:1: the header lacks {sorted(missing)}; a BEIR qrels file starts with "
                "'query-id<TAB>corpus-id<TAB>score'."
            )
        for row in reader:
            grade = _grade(row["score"], f"{path}:{reader.line_num}")
            judged = qrels.setdefault(row["query-id"], {})
            if row["corpus-id"] in judged:
                repeated.append(f"{row['query-id']}/{row['corpus-id']}")
            judged[row["corpus-id"]] = grade
            non_positive += grade <= 0
    return QrelsFile(qrels, repeated, non_positive)


def _grade(value: str | None, where: str) -> int:
    """An integer grade; ``1.0`` is read as 1, as some datasets write grades."""
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not number.is_integer():
        raise InvalidDocumentError(
            f"{where}: score {value!r} is not an integer "
            "(expected query-id<TAB>corpus-id<TAB>score)."
        )
    return int(number)


def beir_qrels(folder: Path, split: str) -> dict[str, dict[str, int]]:
    """Relevance judgements of one split: query id -> doc id -> grade."""
    return read_qrels(qrels_path(folder, split)).qrels


@dataclass(frozen=True)
class BeirDataset:
    """A read BEIR dataset: the judged queries of one split, where the corpus is, and
    the quirks met while reading it (see :mod:`hybrid_retriever.quirks`)."""

    folder: Path
    split: str
    corpus_path: Path
    num_docs: int
    """Documents to index: readable, non-empty, each id once."""
    queries: dict[str, str]
    """The queries that ``qrels`` judges and ``queries.jsonl`` has, in file order."""
    qrels: dict[str, dict[str, int]]
    """Every judgement of the split, as in the file: none dropped, so that scores stay
    comparable with BEIR's (judged documents missing from the corpus count in the ideal DCG)."""
    quirks: tuple[Quirk, ...] = ()
    repeated_ids: Mapping[str, int] = field(default_factory=dict)
    """Document ids that several records carry, and how many: the last one is indexed."""

    @property
    def name(self) -> str:
        return self.folder.resolve().name

    def corpus(self) -> Iterator[Document]:
        """The corpus, streamed again: records that cannot be indexed are skipped (they
        are among the quirks), and of records sharing an id only the last, as in BEIR."""
        remaining = dict(self.repeated_ids)
        for entry in Source(self.corpus_path, SourceKind.BEIR).entries():
            if isinstance(entry, Rejected):
                continue
            doc_id = str(entry.id)
            if doc_id in remaining:
                remaining[doc_id] -= 1
                if remaining[doc_id] > 0:
                    continue
            yield entry


def load_beir(folder: Path, split: str = "test") -> BeirDataset:
    """Read a BEIR dataset as it ships; the corpus is read once to count and check it.

    Nothing in the data stops it: each oddity is handled as BEIR's evaluation does and
    recorded in ``quirks``. Missing files and unreadable files still raise.
    """
    folder = Path(folder)
    corpus_path = _first_existing(folder, *BEIR_CORPUS_FILES)
    queries_path = _first_existing(folder, "queries.jsonl", "queries.jsonl.gz")
    all_queries = beir_queries(folder)
    judgements_path = qrels_path(folder, split)
    judgements = read_qrels(judgements_path)
    qrels = judgements.qrels
    survey = _CorpusSurvey.of(corpus_path)
    doc_ids = set(survey.occurrences)
    quirks = file_quirks([corpus_path, queries_path, judgements_path], folder)
    quirks += survey.quirks(corpus_path.name)
    qrels_name = judgements_path.relative_to(folder).as_posix()

    in_corpus = doc_ids | set(survey.empty)  # empty documents are judged like any other
    unknown_docs = sorted({d for judged in qrels.values() for d in judged} - in_corpus)
    if unknown_docs:
        pairs = sum(d not in in_corpus for judged in qrels.values() for d in judged)
        quirks.append(
            quirk(
                QuirkKind.JUDGED_DOCUMENTS_NOT_IN_CORPUS,
                unknown_docs,
                f"{qrels_name} names {plural(len(unknown_docs), 'document id')} not in "
                f"{corpus_path.name} ({listed(unknown_docs)}; {plural(pairs, 'judgement')}): "
                "kept, as BEIR does, and counted in the ideal DCG.",
            )
        )
    unknown_queries = sorted(set(qrels) - set(all_queries))
    if unknown_queries:
        quirks.append(
            quirk(
                QuirkKind.JUDGED_QUERIES_NOT_IN_QUERIES,
                unknown_queries,
                f"{qrels_name} judges {plural(len(unknown_queries), 'query id', 'query ids')} "
                f"not in {queries_path.name} ({listed(unknown_queries)}): not scored, having "
                "no text to search.",
            )
        )
    unjudged = [q for q in all_queries if q not in qrels]
    if unjudged:
        quirks.append(
            quirk(
                QuirkKind.UNJUDGED_QUERIES,
                unjudged,
                f"{plural(len(unjudged), 'query', 'queries')} of {queries_path.name} "
                f"{'has' if len(unjudged) == 1 else 'have'} no judgement in {qrels_name}: "
                "not run.",
            )
        )
    queries = {q: text for q, text in all_queries.items() if q in qrels}
    empty = [q for q, text in queries.items() if not text.strip()]
    if empty:
        quirks.append(
            quirk(
                QuirkKind.EMPTY_QUERIES,
                empty,
                f"{plural(len(empty), 'judged query', 'judged queries')} with empty text "
                f"({listed(empty)}): nothing to search; scored 0, as a query that finds nothing.",
            )
        )
    shouting = [q for q, text in queries.items() if text.isupper()]
    if shouting:
        quirks.append(
            quirk(
                QuirkKind.UPPERCASE_QUERIES,
                shouting,
                f"{plural(len(shouting), 'judged query', 'judged queries')} in upper case "
                f"({listed(shouting)}): searched as written.",
            )
        )
    if judgements.non_positive:
        quirks.append(
            Quirk(
                QuirkKind.NON_POSITIVE_GRADES,
                judgements.non_positive,
                f"{plural(judgements.non_positive, 'judgement')} in {qrels_name} with grade 0 "
                "or below: kept; they count as not relevant, as in BEIR's trec_eval scoring.",
            )
        )
    if judgements.repeated:
        quirks.append(
            quirk(
                QuirkKind.REPEATED_JUDGEMENTS,
                judgements.repeated,
                f"{plural(len(judgements.repeated), 'query/document pair')} judged more than "
                f"once in {qrels_name} ({listed(judgements.repeated)}): the last grade is kept, "
                "as BEIR's loader does.",
            )
        )
    return BeirDataset(
        folder=folder,
        split=split,
        corpus_path=corpus_path,
        num_docs=len(doc_ids),
        queries=queries,
        qrels=qrels,
        quirks=tuple(quirks),
        repeated_ids={d: n for d, n in survey.occurrences.items() if n > 1},
    )


@dataclass
class _CorpusSurvey:
    """One pass over a corpus: the ids, and the quirks of its records."""

    occurrences: dict[str, int] = field(default_factory=dict)
    empty: list[str] = field(default_factory=list)
    unreadable: list[Rejected] = field(default_factory=list)
    duplicate_texts: list[str] = field(default_factory=list)
    title_only: list[str] = field(default_factory=list)
    titled: int = 0

    @classmethod
    def of(cls, corpus_path: Path) -> _CorpusSurvey:
        survey = cls()
        first_with_text: dict[bytes, str] = {}
        for entry in Source(corpus_path, SourceKind.BEIR).entries():
            if isinstance(entry, Rejected):
                if entry.empty:
                    survey.empty.append(entry.doc_id or entry.where)
                else:
                    survey.unreadable.append(entry)
                continue
            doc_id = str(entry.id)
            survey.occurrences[doc_id] = survey.occurrences.get(doc_id, 0) + 1
            title = entry.metadata.get("title") or ""
            survey.titled += bool(title)
            if title and entry.page_content == title:
                survey.title_only.append(doc_id)
            digest = hashlib.blake2b(entry.page_content.encode(), digest_size=16).digest()
            first = first_with_text.setdefault(digest, doc_id)
            if first != doc_id:
                survey.duplicate_texts.append(doc_id)
        return survey

    def quirks(self, name: str) -> list[Quirk]:
        found = []
        if self.empty:
            found.append(
                quirk(
                    QuirkKind.EMPTY_DOCUMENTS,
                    self.empty,
                    f"{plural(len(self.empty), 'empty document')} in {name} (neither title nor "
                    f"text: {listed(self.empty)}): not indexed, having nothing to find; "
                    "judgements on them are kept.",
                )
            )
        if self.unreadable:
            first = self.unreadable[0]
            found.append(
                Quirk(
                    QuirkKind.UNREADABLE_RECORDS,
                    len(self.unreadable),
                    f"{plural(len(self.unreadable), 'record')} of {name} cannot be read and "
                    f"{'is' if len(self.unreadable) == 1 else 'are'} skipped; the first: "
                    f"{first.reason}",
                    tuple(r.where for r in self.unreadable[:SHOWN]),
                )
            )
        repeated = [d for d, n in self.occurrences.items() if n > 1]
        if repeated:
            found.append(
                quirk(
                    QuirkKind.REPEATED_DOCUMENT_IDS,
                    repeated,
                    f"{plural(len(repeated), 'document id')} used by several records of {name} "
                    f"({listed(repeated)}): the last record of each is indexed, as BEIR's "
                    "loader keeps it.",
                )
            )
        if self.duplicate_texts:
            found.append(
                quirk(
                    QuirkKind.DUPLICATE_TEXTS,
                    self.duplicate_texts,
                    f"{plural(len(self.duplicate_texts), 'document')} of {name} "
                    f"{'repeats' if len(self.duplicate_texts) == 1 else 'repeat'} the text "
                    f"of an earlier one under another id ({listed(self.duplicate_texts)}): "
                    "all indexed, as BEIR does, since each id is judged on its own.",
                )
            )
        if self.title_only:
            found.append(
                quirk(
                    QuirkKind.TITLE_ONLY_DOCUMENTS,
                    self.title_only,
                    f"{plural(len(self.title_only), 'document')} of {name} with a title and no "
                    f"text ({listed(self.title_only)}): indexed by title alone.",
                )
            )
        if self.occurrences and not self.titled:
            found.append(
                Quirk(
                    QuirkKind.NO_TITLES,
                    len(self.occurrences),
                    f"no document of {name} has a title: texts are indexed alone.",
                )
            )
        return found


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
    extra document is retrieved so that ``k`` are still returned. Hits are judged by
    :func:`~hybrid_retriever.branch_lists.hit_id`; the chunks of one document count as its
    best-ranked one.
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
        # A document's chunks count as its best one (max over chunks).
        ranked = list(dict.fromkeys(hit_id(str(d.id), d.metadata) for d in documents))
        if ignore_identical_ids:
            ranked = [doc_id for doc_id in ranked if doc_id != query_id]
            if isinstance(k, int):
                ranked = ranked[:k]
        result.ranking[query_id] = {
            doc_id: -float(rank) for rank, doc_id in enumerate(ranked, start=1)
        }
    return result


def run_from_one_search(
    retriever: HybridRetriever,
    queries: Mapping[str, str],
    runs: Sequence[RunSpec],
    *,
    k: int,
    ignore_identical_ids: bool = False,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> dict[str, RunResult]:
    """Every run's ranking from one search per query (no latencies: see :func:`time_runs`).

    Each query is encoded once and each branch searched once, as deep as the deepest
    run needs; every run's ranking is then what ``invoke`` would return with its options
    (:meth:`HybridRetriever.fuse_rankings`: same option resolution, same fusion). A query
    with empty text retrieves nothing. ``ignore_identical_ids`` is as in :func:`run_retriever`.
    In a collection of chunks, runs fuse chunks, and each document then ranks where its
    best chunk does (max over chunks); ``k`` counts chunks, so fewer documents may come.
    """
    wanted = k + int(ignore_identical_ids)
    depth = max(retriever.search_depth(k=wanted, **spec.options) for spec in runs)
    searchable = {q: text for q, text in queries.items() if text.strip()}
    # Point ids, no payloads: decoding every candidate's payload would cost more than the
    # search; the ids kept are mapped to document ids once each, below.
    branch_lists = search_branches(
        retriever, searchable, depth=depth, progress=progress, with_doc_ids=False
    )
    fused: dict[str, dict[str, list[str]]] = {spec.name: {} for spec in runs}
    for query_id in queries:
        lists = branch_lists.get(query_id)
        for spec in runs:
            fused[spec.name][query_id] = (
                []
                if lists is None
                else [
                    hit.id
                    for hit in retriever.fuse_rankings(
                        queries[query_id], lists, k=wanted, **spec.options
                    )
                ]
            )
    kept = list(
        dict.fromkeys(i for per_run in fused.values() for ids in per_run.values() for i in ids)
    )
    doc_ids = {}
    for start in range(0, len(kept), 1024):
        points = retriever.storage.retrieve(retriever.collection_name, kept[start : start + 1024])
        for point in points:
            doc_ids[point.id] = stored_hit_id(point.id, point.payload)
    results = {spec.name: RunResult() for spec in runs}
    for name, per_query in fused.items():
        for query_id, point_ids in per_query.items():
            # Deleted meanwhile: gone. A document's chunks count as its best (first) one.
            ranked = list(dict.fromkeys(doc_ids[p] for p in point_ids if p in doc_ids))
            if ignore_identical_ids:
                ranked = [doc_id for doc_id in ranked if doc_id != query_id][:k]
            results[name].ranking[query_id] = {
                doc_id: -float(rank) for rank, doc_id in enumerate(ranked, start=1)
            }
    return results


def latency_sample(queries: Mapping[str, str], size: int, *, seed: int = 0) -> dict[str, str]:
    """``size`` of the searchable queries, drawn with a fixed seed, in file order."""
    searchable = [q for q, text in queries.items() if text.strip()]
    chosen = set(random.Random(seed).sample(searchable, min(size, len(searchable))))
    return {q: queries[q] for q in searchable if q in chosen}


def time_runs(
    retriever: BaseRetriever,
    queries: Mapping[str, str],
    runs: Sequence[RunSpec],
    *,
    k: int,
) -> dict[str, list[float]]:
    """Per run, the milliseconds each of ``queries`` takes through ``invoke``: latency as
    users see it (build the retriever with ``query_cache_size=0`` so each call encodes)."""
    latencies: dict[str, list[float]] = {spec.name: [] for spec in runs}
    for spec in runs:
        if queries:  # one call untimed, so that no run pays for first-call set-up
            retriever.invoke(next(iter(queries.values())), k=k, **spec.options)
        for text in queries.values():
            start = time.perf_counter()
            retriever.invoke(text, k=k, **spec.options)
            latencies[spec.name].append((time.perf_counter() - start) * 1000)
    return latencies


# -- scoring -------------------------------------------------------------------------------------


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
