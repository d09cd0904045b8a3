"""Resumable indexing with a progress bar, shared by ``index`` and ``eval``.

Point ids are deterministic (uuid5 of the source id), so running ``index`` again
rewrites the same points. To make a rerun after an interruption cheap, documents
whose stored point already holds the same text and metadata are skipped before
they are encoded (encoding is what costs); changed documents are written again.
Documents that disappeared from the source are not deleted.

Records that cannot be indexed do not stop ``index``: :class:`RejectsFile` writes each,
with where it was, why, and the line as read, so that it can be fixed and indexed by
running the same command again (``--strict`` refuses the whole source instead).
What reaches :func:`index_resumable` has passed the write path's checks
(:meth:`hybrid_retriever.sources.Source.checked`), so no record stops a run half way.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from langchain_core.documents import Document

from hybrid_retriever.collection import CONTENT_KEY, METADATA_KEY
from hybrid_retriever.documents import point_id
from hybrid_retriever.evaluation import DatasetError
from hybrid_retriever.sources import Rejected

if TYPE_CHECKING:
    from hybrid_retriever.chunking import Chunker
    from hybrid_retriever.evaluation import BeirDataset
    from hybrid_retriever.retriever import HybridRetriever

CHECK_BATCH = 256
"""Documents looked up per round trip when checking what is already stored."""


@dataclass(frozen=True)
class IndexStats:
    """What one indexing run did."""

    read: int
    written: int
    unchanged: int
    seconds: float
    points: int
    """Points in the collection afterwards."""

    @property
    def docs_per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0


@dataclass
class RejectsFile:
    """Records that cannot be indexed, one JSON object a line (``where``, ``line_number``,
    ``id``, ``reason``, ``empty``, ``line``: see :meth:`Rejected.to_json`). The file
    describes the last run: it is replaced on the first reject, and removed when a run
    rejects nothing."""

    path: Path
    count: int = 0
    _handle: IO[str] | None = field(default=None, repr=False)

    def keep_documents(self, entries: Iterable[Document | Rejected]) -> Iterator[Document]:
        """The documents among ``entries``; each rejected record is written down."""
        for entry in entries:
            if isinstance(entry, Rejected):
                self.write(entry)
            else:
                yield entry

    def write(self, rejected: Rejected) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # backslashreplace: a reason quoting a lone surrogate must not stop the run.
            self._handle = self.path.open("w", encoding="utf-8", errors="backslashreplace")
        self._handle.write(json.dumps(rejected.to_json(), ensure_ascii=False) + "\n")
        self._handle.flush()  # a crash later must not lose what was already rejected
        self.count += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        elif self.count == 0:
            self.path.unlink(missing_ok=True)


def warm_up(retriever: HybridRetriever) -> None:
    """Load both models now, so that timings measure indexing rather than model loading."""
    retriever.dense_encoder.encode_query("warm-up")
    retriever.sparse_encoder.encode_query("warm-up")


def index_resumable(
    retriever: HybridRetriever,
    documents: Iterable[Document],
    *,
    total: int | None,
    batch_size: int,
    show_progress: bool,
) -> IndexStats:
    """Index ``documents``, skipping those stored unchanged; a tqdm bar shows docs/s."""
    from tqdm.auto import tqdm

    collection = retriever.collection_name
    exists = retriever.storage.get_layout(collection) is not None
    counts = {"read": 0, "unchanged": 0}
    bar = tqdm(
        total=total,
        unit="doc",
        desc=f"Indexing into {collection!r}",
        disable=not show_progress,
        delay=0.5,
    )

    def fresh() -> Iterator[Document]:
        stream = iter(documents)
        while chunk := list(itertools.islice(stream, CHECK_BATCH)):
            new = _changed(retriever, chunk) if exists else chunk
            counts["read"] += len(chunk)
            counts["unchanged"] += len(chunk) - len(new)
            for start in range(0, len(new), batch_size):
                yield from new[start : start + batch_size]
                # Reached when the indexer asks for the next batch: this one is written.
                bar.update(len(new[start : start + batch_size]))
            bar.update(len(chunk) - len(new))
            bar.set_postfix(unchanged=counts["unchanged"], refresh=False)

    start = time.perf_counter()
    try:
        written = retriever.add_documents(fresh(), batch_size=batch_size, show_progress=False)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    stored = retriever.storage.get_layout(collection) is not None
    return IndexStats(
        read=counts["read"],
        written=len(written),
        unchanged=counts["unchanged"],
        seconds=seconds,
        points=retriever.count() if stored else 0,
    )


def _changed(retriever: HybridRetriever, chunk: list[Document]) -> list[Document]:
    """The documents of ``chunk`` not stored with exactly this text and metadata."""
    tenancy = retriever.tenancy
    if tenancy is None:
        ids = [point_id(d.id, d.page_content, d.metadata) for d in chunk]
        metadatas = [d.metadata for d in chunk]
    else:  # where and how a tenant-bound retriever stores them (``tenancy``)
        prepared = [
            tenancy.prepare(d.page_content, d.metadata, d.id, position=i)
            for i, d in enumerate(chunk)
        ]
        ids = [p.point_id for p in prepared]
        metadatas = [p.payload[METADATA_KEY] for p in prepared]
    # By point id, so that points written before ids were stored count as unchanged too.
    stored = {p.id: p.payload for p in retriever.storage.retrieve(retriever.collection_name, ids)}
    return [
        document
        for document, pid, metadata in zip(chunk, ids, metadatas, strict=True)
        if (old := stored.get(pid)) is None
        or old.get(CONTENT_KEY) != document.page_content
        or old.get(METADATA_KEY) != metadata
    ]


def index_dataset(
    retriever: HybridRetriever,
    dataset: BeirDataset,
    *,
    batch_size: int,
    show_progress: bool,
    chunker: Chunker | None = None,
) -> IndexStats:
    """Index a BEIR corpus for evaluation, refusing a collection that holds more than it:
    documents from elsewhere would skew every score. With ``chunker``, documents longer
    than the encoders read are indexed as their chunks (``stats.read`` counts passages)."""
    documents = dataset.corpus()
    if chunker is not None:
        documents = chunker.split_all(documents)
    stats = index_resumable(
        retriever,
        documents,
        total=None if chunker is not None else dataset.num_docs,
        batch_size=batch_size,
        show_progress=show_progress,
    )
    if stats.points > stats.read:
        what = "passages" if chunker is not None else "documents"
        raise DatasetError(
            f"Collection {retriever.collection_name!r} in {retriever.storage!r} holds "
            f"{stats.points} points but {dataset.folder} has {stats.read} {what}: it "
            "also holds points from elsewhere (or from a run with other --chunking), which "
            "would skew every score. Use another --collection."
        )
    return stats
