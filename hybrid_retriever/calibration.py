"""Branch weights without labels: how well each branch finds a document from its own sentence.

A corpus can be much easier for one branch than for the other (a SPLADE model that
knows little of its vocabulary, a dense model that reads only the start of long
documents). Per-query signals do not see that, and fusing a weak branch as an equal
drags the result below the strong branch alone. This module measures it once per
corpus, from the corpus alone, by *known-item* search (Azzopardi, de Rijke and Balog,
"Building Simulated Queries for Known-Item Topics", SIGIR 2007):

1. sample documents; for each, take one sentence of its own text as a query (not the
   first sentence, which is often a title);
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
with one branch weakened): never below the better branch, and 0.01 below the
per-query default where the branches are equal.

The result is a :class:`~hybrid_retriever.tuning.FusionConfig`, saved and loaded
like the one ``tune`` writes from labels.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from hybrid_retriever.errors import CollectionNotFoundError, InvalidParameterError
from hybrid_retriever.fusion.methods import FusionMethod
from hybrid_retriever.search_options import BRANCHES
from hybrid_retriever.tuning import FusionConfig, hit_id, search_branches

if TYPE_CHECKING:
    from hybrid_retriever.retriever import HybridRetriever

DEFAULT_SAMPLE = 200
"""Known-item queries per calibration: a reciprocal rank lies in [0, 1], so its standard
deviation is at most 0.5 and each branch's MRR@10 has a standard error of at most
0.5 / sqrt(200) = 0.035."""
MIN_QUERIES = 20
"""Fewer usable documents than this give weights that are mostly noise."""
MRR_DEPTH = 10
SENTENCE_WORDS = (6, 30)
"""A sentence shorter than this says too little; a longer one is a paragraph."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


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


def weights_from_mrr(mrr: Mapping[str, float]) -> dict[str, float]:
    """Each branch's MRR squared, normalised to sum to 1 (equal if every MRR is 0)."""
    squared = {branch: value * value for branch, value in mrr.items()}
    total = math.fsum(squared.values())
    if total == 0:
        return {branch: 1.0 / len(mrr) for branch in mrr}
    return {branch: value / total for branch, value in squared.items()}


def known_item_queries(
    documents: Iterable[Document],
    *,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
) -> list[KnownItemQuery]:
    """Up to ``sample`` documents, drawn uniformly (reservoir sampling, one pass), each
    with one of its sentences of 6-30 words; documents without one are skipped."""
    from hybrid_retriever.documents import point_id

    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise InvalidParameterError(f"sample must be an integer >= 1, got {sample!r}.")
    rng = random.Random(seed)
    reservoir: list[tuple[Document, str]] = []
    usable = 0
    for document in documents:
        sentences = candidate_sentences(document.page_content)
        if not sentences:
            continue
        usable += 1
        if len(reservoir) < sample:
            reservoir.append((document, rng.choice(sentences)))
        else:
            slot = rng.randrange(usable)
            if slot < sample:
                reservoir[slot] = (document, rng.choice(sentences))
    queries = []
    for document, sentence in reservoir:
        point = point_id(document.id, document.page_content, document.metadata)
        target = hit_id(point, document.metadata)
        queries.append(KnownItemQuery(text=sentence, point_id=point, target_id=target))
    return queries


def candidate_sentences(text: str) -> list[str]:
    """The sentences of ``text`` that can stand as a query, leaving out the first when
    there are others (a title or heading runs into it)."""
    low, high = SENTENCE_WORDS
    sentences = [s.strip() for s in _SENTENCE_END.split(text)]
    usable = [s for s in sentences if low <= len(s.split()) <= high]
    if len(usable) > 1 and usable[0] == sentences[0]:
        usable = usable[1:]
    return usable


def calibrate(
    retriever: HybridRetriever,
    documents: Iterable[Document],
    *,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
) -> Calibration:
    """Measure each branch of ``retriever`` on known-item queries from ``documents``,
    which are (some of) those indexed in its collection, read once."""
    collection = retriever.collection_name
    if retriever.storage.get_layout(collection) is None:
        raise CollectionNotFoundError(
            f"Collection {collection!r} does not exist; index the documents first "
            f"('hybrid-retriever index SOURCE --collection {collection}' or add_documents)."
        )
    sampled = known_item_queries(documents, sample=sample, seed=seed)
    stored = {
        point.id for point in retriever.storage.retrieve(collection, [q.point_id for q in sampled])
    }
    queries = [q for q in sampled if q.point_id in stored]
    if len(queries) < MIN_QUERIES:
        raise InvalidParameterError(
            f"Calibration needs at least {MIN_QUERIES} indexed documents with a sentence "
            f"of {SENTENCE_WORDS[0]}-{SENTENCE_WORDS[1]} words; of {len(sampled)} sampled "
            f"with such a sentence, {len(queries)} are in collection {collection!r}. Pass "
            "the documents you indexed (more of them), or set the weights yourself."
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
