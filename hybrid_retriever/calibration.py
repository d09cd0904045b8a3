"""Branch weights without labels, measured on the collection and stored with it.

A corpus can be much easier for one branch than for the other (a SPLADE model that
knows little of its vocabulary, a dense model that reads only the start of long
documents). Per-query signals do not see that, and fusing a weak branch as an equal
drags the result below the strong branch alone. This module measures it once per
corpus, from the corpus alone, by *known-item* search (Azzopardi, de Rijke and Balog,
"Building Simulated Queries for Known-Item Topics", SIGIR 2007):

1. sample documents of the collection; for each, take one sentence of its own text
   as a query (not the first sentence, which is often a title);
2. search each branch alone, as ``invoke`` would, and score it by the MRR@10 of the
   document the sentence came from;
3. weight each branch by its MRR squared (normalised to sum to 1) and fuse with
   :mod:`~hybrid_retriever.fusion.adaptive`, whose per-query confidences then
   multiply these weights.

Known-item queries share words with their document, so both branches score higher
on them than on real questions, and SPLADE gains more than dense does. The square
is there because what matters is the *ratio* of the two: with a plain ratio a branch
half as good still kept a third of the weight, too much in the study's capped-SPLADE
settings. Measured in ``benchmarks/fusion_study.py`` (SciFact and nine settings
with one branch weakened).

The sample is the documents whose point ids come first after a point fixed by the
seed, in id order. Point ids are hashes (:mod:`hybrid_retriever.documents`), so that
is a uniform sample, and the collection yields it with one scroll, however large it
is; :func:`known_item_queries` draws the same sample from the documents themselves.

When it runs: after each ``add_documents``, :func:`refresh_calibration` measures the
collection if it has no calibration for these encoders yet, or has doubled or halved
in size since the last one, and stores the result in the collection's metadata under
:data:`STORED_KEY`. A search that sets no weights then uses them with adaptive fusion
(``HybridRetriever(auto_calibrate=False)`` turns both off).
"""

from __future__ import annotations

import heapq
import math
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from random import Random
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from hybrid_retriever.collection import CONTENT_KEY, METADATA_KEY
from hybrid_retriever.errors import CollectionNotFoundError, InvalidParameterError
from hybrid_retriever.fusion.methods import FusionMethod
from hybrid_retriever.search_options import BRANCHES
from hybrid_retriever.tuning import FusionConfig, hit_id, search_branches

if TYPE_CHECKING:
    from hybrid_retriever.retriever import HybridRetriever
    from hybrid_retriever.storage.base import StorageBackend

DEFAULT_SAMPLE = 200
"""Known-item queries per calibration: a reciprocal rank lies in [0, 1], so its standard
deviation is at most 0.5 and each branch's MRR@10 has a standard error of at most
0.5 / sqrt(200) = 0.035."""
MIN_QUERIES = 20
"""Fewer usable documents than this give weights that are mostly noise."""
MRR_DEPTH = 10
SENTENCE_WORDS = (6, 30)
"""A sentence shorter than this says too little; a longer one is a paragraph."""
SCAN_FACTOR = 20
"""At most ``sample`` times this many documents are read looking for usable sentences:
a corpus of titles has none, and reading all of a large one would be slow."""
RESIZE_FACTOR = 2
"""Calibrate again once the collection holds this many times more (or fewer) points."""
STORED_KEY = "hybrid_retriever.calibration"
"""The key of the calibration in the collection's metadata."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SAMPLE_NAMESPACE = uuid.UUID("5b0b9d9e-6c1f-4b0e-9a53-1f3c0c6f2a47")
_SCROLL_PAGE = 256


class NotEnoughDocumentsError(InvalidParameterError):
    """Too few documents with a usable sentence to calibrate: not a failure, since the
    retriever then keeps equal weights, and :func:`refresh_calibration` stores why."""


@dataclass(frozen=True)
class KnownItemQuery:
    """A sentence of a document; the document's point id, and the id its search hits
    carry (``tuning.hit_id``)."""

    text: str
    point_id: str
    target_id: str


@dataclass(frozen=True)
class Calibration:
    """Each branch's known-item MRR@10, and the weights made from it."""

    known_item_mrr: dict[str, float]
    weights: dict[str, float]
    queries: int

    def config(self, *, provenance: Mapping[str, Any] | None = None) -> FusionConfig:
        """The fusion to use: adaptive, with these weights as its prior; ``provenance``
        adds to what the config records about how it was made."""
        return FusionConfig(
            method=FusionMethod.ADAPTIVE,
            weights=dict(self.weights),
            provenance={
                "calibration": "known-item search, no labels",
                **self.to_json(),
                **(provenance or {}),
            },
        )

    def to_json(self) -> dict[str, Any]:
        """What was measured and chosen, as a report records it."""
        return {
            "known_item_mrr@10": dict(self.known_item_mrr),
            "weights": dict(self.weights),
            "queries": self.queries,
        }


@dataclass(frozen=True)
class StoredCalibration:
    """What a collection's metadata says about its calibration: for which encoders and
    collection size it was measured, and the result, or why there is none."""

    points: int
    dense_encoder: str
    sparse_encoder: str
    calibration: Calibration | None
    skipped: str | None = None

    def fits(self, retriever: HybridRetriever) -> bool:
        """Measured with the encoders ``retriever`` searches with."""
        return (self.dense_encoder, self.sparse_encoder) == (
            retriever.dense_encoder.name,
            retriever.sparse_encoder.name,
        )

    def is_due(self, retriever: HybridRetriever, *, points: int) -> bool:
        """Whether to measure again: other encoders, or a collection of ``points`` that
        has grown or shrunk by :data:`RESIZE_FACTOR` since."""
        resized = points >= self.points * RESIZE_FACTOR or points * RESIZE_FACTOR <= self.points
        return resized or not self.fits(retriever)

    def to_json(self) -> dict[str, Any]:
        return {
            "points": self.points,
            "dense_encoder": self.dense_encoder,
            "sparse_encoder": self.sparse_encoder,
            "calibration": None if self.calibration is None else self.calibration.to_json(),
            "skipped": self.skipped,
        }

    @classmethod
    def from_json(cls, data: Any) -> StoredCalibration | None:
        """The record, or None if ``data`` is not one (absent, or written by something
        else): a calibration is only ever a refinement, never needed to search."""
        try:
            measured = data["calibration"]
            calibration = None
            if measured is not None:
                calibration = Calibration(
                    known_item_mrr={b: float(measured["known_item_mrr@10"][b]) for b in BRANCHES},
                    weights={b: float(measured["weights"][b]) for b in BRANCHES},
                    queries=int(measured["queries"]),
                )
            return cls(
                points=int(data["points"]),
                dense_encoder=str(data["dense_encoder"]),
                sparse_encoder=str(data["sparse_encoder"]),
                calibration=calibration,
                skipped=None if data.get("skipped") is None else str(data["skipped"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def weights_from_mrr(mrr: Mapping[str, float]) -> dict[str, float]:
    """Each branch's MRR squared, normalised to sum to 1 (equal if every MRR is 0)."""
    squared = {branch: value * value for branch, value in mrr.items()}
    total = math.fsum(squared.values())
    if total == 0:
        return {branch: 1.0 / len(mrr) for branch in mrr}
    return {branch: value / total for branch, value in squared.items()}


# -- the sample ------------------------------------------------------------------------------


def sample_order(point_id: str, *, seed: int = 0) -> int:
    """A point's place in the sample order of ``seed``: how far its id lies past the
    seed's starting id, going round the id space once."""
    return (uuid.UUID(point_id).int - _sample_start(seed).int) % 2**128


def known_item_queries(
    documents: Iterable[Document],
    *,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
) -> list[KnownItemQuery]:
    """The queries :func:`calibrate` draws once ``documents`` are indexed (and nothing
    else is): up to ``sample`` documents in sample order, each with one sentence."""
    from hybrid_retriever.documents import point_id

    _check_sample(sample)
    points = {
        point_id(d.id, d.page_content, d.metadata): (d.page_content, d.metadata) for d in documents
    }
    first = heapq.nsmallest(
        sample * SCAN_FACTOR, points, key=lambda point: sample_order(point, seed=seed)
    )
    return _queries(((p, *points[p]) for p in first), sample=sample, seed=seed)


def collection_queries(
    storage: StorageBackend, collection: str, *, sample: int = DEFAULT_SAMPLE, seed: int = 0
) -> list[KnownItemQuery]:
    """Known-item queries from the documents stored in ``collection``: read in sample
    order with a scroll from the seed's starting id, wrapping round once."""
    _check_sample(sample)
    points = _stored_in_sample_order(storage, collection, seed=seed, limit=sample * SCAN_FACTOR)
    return _queries(points, sample=sample, seed=seed)


def candidate_sentences(text: str) -> list[str]:
    """The sentences of ``text`` that can stand as a query, leaving out the first when
    there are others (a title or heading runs into it)."""
    low, high = SENTENCE_WORDS
    sentences = [s.strip() for s in _SENTENCE_END.split(text)]
    usable = [s for s in sentences if low <= len(s.split()) <= high]
    if len(usable) > 1 and usable[0] == sentences[0]:
        usable = usable[1:]
    return usable


def _queries(
    points: Iterable[tuple[str, str, Mapping[str, Any]]], *, sample: int, seed: int
) -> list[KnownItemQuery]:
    """The first ``sample`` points with a usable sentence, each with one chosen by its id
    (so the choice does not depend on which other documents were read)."""
    queries = []
    for point, text, metadata in points:
        sentences = candidate_sentences(text)
        if sentences:
            sentence = Random(f"{seed}:{point}").choice(sentences)
            queries.append(KnownItemQuery(sentence, point, hit_id(point, metadata)))
            if len(queries) == sample:
                break
    return queries


def _stored_in_sample_order(
    storage: StorageBackend, collection: str, *, seed: int, limit: int
) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    start = _sample_start(seed)
    read = 0
    # From the starting id to the end, then from the beginning up to the starting id.
    for offset, stop in ((str(start), None), (None, start)):
        first_page = True
        while (first_page or offset is not None) and read < limit:
            first_page = False
            page, offset = storage.scroll(
                collection, offset=offset, limit=min(_SCROLL_PAGE, limit - read)
            )
            for point in page:
                if stop is not None and _at_or_after(point.id, stop):
                    return
                read += 1
                text = point.payload.get(CONTENT_KEY)
                metadata = point.payload.get(METADATA_KEY)
                yield point.id, text if isinstance(text, str) else "", metadata or {}


def _at_or_after(point_id: str, start: uuid.UUID) -> bool:
    try:
        return uuid.UUID(point_id).int >= start.int
    except ValueError:  # an integer id (written by another tool) sorts before every UUID
        return False


def _sample_start(seed: int) -> uuid.UUID:
    return uuid.uuid5(_SAMPLE_NAMESPACE, str(seed))


def _check_sample(sample: Any) -> None:
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise InvalidParameterError(f"sample must be an integer >= 1, got {sample!r}.")


# -- measuring, storing ----------------------------------------------------------------------


def calibrate(
    retriever: HybridRetriever, *, sample: int = DEFAULT_SAMPLE, seed: int = 0
) -> Calibration:
    """Measure each branch of ``retriever`` on known-item queries from its collection."""
    collection = retriever.collection_name
    if retriever.storage.get_layout(collection) is None:
        raise CollectionNotFoundError(
            f"Collection {collection!r} does not exist; index the documents first "
            f"('hybrid-retriever index SOURCE --collection {collection}' or add_documents)."
        )
    queries = collection_queries(retriever.storage, collection, sample=sample, seed=seed)
    if len(queries) < MIN_QUERIES:
        raise NotEnoughDocumentsError(
            f"Calibration needs at least {MIN_QUERIES} documents with a sentence of "
            f"{SENTENCE_WORDS[0]}-{SENTENCE_WORDS[1]} words; collection {collection!r} has "
            f"{len(queries)} (looking at up to {sample * SCAN_FACTOR} documents). Index more "
            "documents, or set the weights yourself (weights=...)."
        )
    rankings = search_branches(
        retriever, {str(i): q.text for i, q in enumerate(queries)}, depth=MRR_DEPTH
    )
    mrr = {}
    for branch in BRANCHES:
        reciprocal_ranks = []
        for i, query in enumerate(queries):
            ranked = [hit.id for hit in rankings[str(i)][branch]]
            rank = ranked.index(query.target_id) + 1 if query.target_id in ranked else None
            reciprocal_ranks.append(1.0 / rank if rank else 0.0)
        mrr[branch] = math.fsum(reciprocal_ranks) / len(reciprocal_ranks)
    return Calibration(known_item_mrr=mrr, weights=weights_from_mrr(mrr), queries=len(queries))


def stored_calibration(retriever: HybridRetriever) -> StoredCalibration | None:
    """What ``retriever``'s collection has stored, if anything (whatever its encoders)."""
    metadata = retriever.storage.get_metadata(retriever.collection_name)
    return StoredCalibration.from_json(metadata.get(STORED_KEY))


def refresh_calibration(
    retriever: HybridRetriever,
    *,
    force: bool = False,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
) -> StoredCalibration:
    """Measure the collection and store the result when it is due (or ``force``); return
    what is stored now. A collection too small to calibrate stores why, and is measured
    again once it has grown by :data:`RESIZE_FACTOR`."""
    _check_sample(sample)
    storage, collection = retriever.storage, retriever.collection_name
    points = storage.count(collection)
    stored = stored_calibration(retriever)
    if not force and stored is not None and not stored.is_due(retriever, points=points):
        return stored
    calibration: Calibration | None = None
    skipped: str | None = None
    try:
        calibration = calibrate(retriever, sample=sample, seed=seed)
    except NotEnoughDocumentsError as exc:
        skipped = str(exc)
    record = StoredCalibration(
        points=points,
        dense_encoder=retriever.dense_encoder.name,
        sparse_encoder=retriever.sparse_encoder.name,
        calibration=calibration,
        skipped=skipped,
    )
    storage.update_metadata(collection, {STORED_KEY: record.to_json()})
    return record
