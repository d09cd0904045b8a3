"""``_relevance``: the model's arithmetic, its monotonicity, its agreement with the study
that fitted it, and what it does on a real collection with the real models: an off-topic
query scores low, an on-topic one high, the ranking never changes, ``score_threshold``
(retriever, per call, VectorStore, ``as_retriever``) drops what is below it."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.documents import Document

from hybrid_retriever import (
    HybridRetriever,
    HybridVectorStore,
    InvalidParameterError,
    SentenceTransformerEncoder,
    SpladeEncoder,
)
from hybrid_retriever.fusion.rrf import FusedHit
from hybrid_retriever.relevance import (
    MODELS,
    RECOMMENDED_THRESHOLD,
    RELEVANCE_KEY,
    SCALES,
    QueryScale,
    RelevanceModel,
    branch_evidence,
    check_score_threshold,
    hit_evidence,
    model_for,
    relevance,
)

STUDY = Path(__file__).resolve().parent.parent / "benchmarks/results/relevance_study.json"

ON_TOPIC = "how do I make bread dough rise"
OFF_TOPIC = "quantum chromodynamics lattice gauge"


# -- the arithmetic ------------------------------------------------------------------------


def test_query_scales_by_hand() -> None:
    values = [3.0, 4.0]
    assert QueryScale.RAW.of(values) == 1.0
    assert QueryScale.L2.of(values) == 5.0
    assert QueryScale.SELF.of(values) == 25.0
    assert [scale.of([]) for scale in QueryScale] == [0.0, 0.0, 0.0]


def test_evidence_and_relevance_by_hand() -> None:
    # dense as returned; a lexical score over the query's scale; 0 for a query with no terms
    assert branch_evidence("dense", 0.25, 1.0) == 0.25
    assert branch_evidence("sparse", 6.0, 4.0) == 1.5
    assert branch_evidence("bm25", 6.0, 0.0) == 0.0
    hit = FusedHit(
        id="a", score=0.9, ranks={"dense": 1, "sparse": None}, scores={"dense": 0.5, "sparse": None}
    )
    # the sparse branch did not return the hit: its lowest returned score stands in
    evidence = hit_evidence(hit, {"dense": 1.0, "sparse": 2.0}, {"dense": 0.1, "sparse": 3.0})
    assert evidence == {"dense": 0.5, "sparse": 1.5}
    model = RelevanceModel(intercept=-2.75, weights={"dense": 4.0, "sparse": 0.5})
    # z = -2.75 + 4 * 0.5 + 0.5 * 1.5 = 0 -> 1 / 2
    assert model(evidence) == 0.5
    # z = -2.75 + 4 * 1 + 0.5 * 1.5 = 2 -> 1 / (1 + e^-2)
    assert model({"dense": 1.0, "sparse": 1.5}) == pytest.approx(0.8807970779778823, abs=1e-15)
    assert model({"dense": -1.0, "sparse": 0.0}) == pytest.approx(
        1 / (1 + math.exp(6.75)), rel=1e-12
    )


def test_shipped_model_by_hand() -> None:
    """One shipped model worked through from its own coefficients."""
    model = MODELS[frozenset({"dense", "sparse"})]
    hit = FusedHit(
        id="a", score=1.0, ranks={"dense": 1, "sparse": 1}, scores={"dense": 0.6, "sparse": 12.0}
    )
    sparse_scale = SCALES["sparse"].of([2.0, 1.0, 2.0])  # raw 1, l2 3, self 9
    scales = {"dense": 1.0, "sparse": sparse_scale}
    z = (
        model.intercept
        + model.weights["dense"] * 0.6
        + model.weights["sparse"] * 12.0 / sparse_scale
    )
    assert relevance(hit, scales, {}) == pytest.approx(1 / (1 + math.exp(-z)), rel=1e-12)


def test_the_shipped_coefficients_are_the_studys() -> None:
    shipped = json.loads(STUDY.read_text())["shipped"]
    assert {b: s.value for b, s in SCALES.items()} == shipped["scales"]
    assert shipped["threshold"] == RECOMMENDED_THRESHOLD
    assert len(MODELS) == 7
    for name, entry in shipped["models"].items():
        model = MODELS[frozenset(name.split("+"))]
        assert model.intercept == entry["intercept"]
        assert dict(model.weights) == entry["weights"]


@pytest.mark.parametrize("branches", sorted(MODELS, key=sorted), ids=lambda b: "+".join(sorted(b)))
def test_relevance_rises_with_every_branch_and_stays_in_0_1(branches: frozenset[str]) -> None:
    model = model_for(branches)
    assert all(w >= 0 for w in model.weights.values())
    base = dict.fromkeys(branches, 0.3)
    for branch in branches:
        values = []
        for step in range(-20, 41):
            evidence = {**base, branch: step / 10}
            value = model(evidence)
            assert 0.0 <= value <= 1.0
            values.append(value)
        assert values == sorted(values)  # never falls as the branch's evidence rises
        if model.weights[branch] > 0:
            assert values[-1] > values[0]


def test_bad_thresholds_are_refused() -> None:
    assert check_score_threshold(None) is None
    assert check_score_threshold(0) == 0.0
    assert check_score_threshold(1) == 1.0
    for bad in (-0.01, 1.01, float("nan"), float("inf")):
        with pytest.raises(InvalidParameterError, match=r"outside \[0, 1\]"):
            check_score_threshold(bad)
    for bad in ("0.5", True, [0.5]):
        with pytest.raises(InvalidParameterError, match="must be a number in"):
            check_score_threshold(bad)


# -- on a real collection ---------------------------------------------------------------------


@pytest.fixture(scope="module", params=("edge", "qdrant-client"))
def cooking_astronomy(
    request: pytest.FixtureRequest,
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
    documents: list[Document],
) -> Iterator[HybridRetriever]:
    """The issue's example: a small cooking and astronomy collection, with BM25."""
    chosen = [d for d in documents if d.metadata["topic"] in ("cooking", "astronomy")]
    retriever = HybridRetriever.from_documents(
        chosen,
        collection_name="cooking_astronomy",
        dense_encoder=dense_encoder,
        sparse_encoder=sparse_encoder,
        bm25_encoder=True,
        engine=request.param,
        show_progress=False,
    )
    yield retriever
    retriever.close()


def test_off_topic_scores_low_and_on_topic_high(cooking_astronomy: HybridRetriever) -> None:
    for branches in (("dense",), ("dense", "sparse"), ("dense", "sparse", "bm25")):
        on = cooking_astronomy.invoke(ON_TOPIC, branches=branches)
        off = cooking_astronomy.invoke(OFF_TOPIC, branches=branches)
        on_top, off_top = on[0].metadata[RELEVANCE_KEY], off[0].metadata[RELEVANCE_KEY]
        assert on[0].metadata["topic"] == "cooking"
        assert on_top >= RECOMMENDED_THRESHOLD > off_top, (branches, on_top, off_top)
        assert off_top < 0.2 and on_top > 0.8, (branches, on_top, off_top)
        # the fused score does not tell them apart; the relevance does
        assert all(0.0 <= d.metadata[RELEVANCE_KEY] <= 1.0 for d in on + off)


def test_the_ranking_is_unchanged(cooking_astronomy: HybridRetriever) -> None:
    from hybrid_retriever.tuning import search_branches

    for query in (ON_TOPIC, OFF_TOPIC, "the largest planet"):
        found = cooking_astronomy.invoke(query, k=8)
        # the fusion alone, from the same branch lists, ranks the same ids in the same order
        rankings = search_branches(cooking_astronomy, {"q": query}, depth=100, with_doc_ids=False)[
            "q"
        ]
        fused = cooking_astronomy.fuse_rankings(query, rankings, k=8)
        assert [d.metadata["_id"] for d in found] == [h.id for h in fused]
        scores = [d.metadata["_score"] for d in found]
        assert scores == sorted(scores, reverse=True)
        # a threshold keeps the fused order and drops exactly what is below it
        for threshold in (0.0, 0.3, RECOMMENDED_THRESHOLD, 0.9):
            kept = cooking_astronomy.invoke(query, k=8, score_threshold=threshold)
            assert [d.id for d in kept] == [
                d.id for d in found if d.metadata[RELEVANCE_KEY] >= threshold
            ]


def test_every_path_carries_the_same_relevance(cooking_astronomy: HybridRetriever) -> None:
    import asyncio

    single = cooking_astronomy.invoke(ON_TOPIC)
    batched = cooking_astronomy.batch([OFF_TOPIC, ON_TOPIC])[1]
    awaited = asyncio.run(cooking_astronomy.ainvoke(ON_TOPIC))
    expected = [d.metadata[RELEVANCE_KEY] for d in single]
    assert [d.metadata[RELEVANCE_KEY] for d in batched] == pytest.approx(expected, abs=1e-6)
    assert [d.metadata[RELEVANCE_KEY] for d in awaited] == pytest.approx(expected, abs=1e-6)


def test_score_threshold_on_the_retriever_and_per_call(
    cooking_astronomy: HybridRetriever,
) -> None:
    # shares the storage, so it is not closed here
    strict = HybridRetriever(
        storage=cooking_astronomy.storage,
        collection_name="cooking_astronomy",
        dense_encoder=cooking_astronomy.dense_encoder,
        sparse_encoder=cooking_astronomy.sparse_encoder,
        bm25_encoder=True,
        score_threshold=RECOMMENDED_THRESHOLD,
    )
    assert strict.invoke(OFF_TOPIC) == []
    assert strict.batch([OFF_TOPIC])[0] == []
    assert strict.invoke(ON_TOPIC)[0].metadata["topic"] == "cooking"
    assert len(strict.invoke(OFF_TOPIC, score_threshold=0.0)) == 4  # per call wins
    assert cooking_astronomy.invoke(OFF_TOPIC, score_threshold=RECOMMENDED_THRESHOLD) == []
    for bad in (1.5, "high"):
        with pytest.raises(InvalidParameterError, match="score_threshold"):
            cooking_astronomy.invoke(ON_TOPIC, score_threshold=bad)
        with pytest.raises(InvalidParameterError, match="score_threshold"):
            HybridRetriever(storage=cooking_astronomy.storage, score_threshold=bad)


def test_vectorstore_relevance_scores_and_threshold_retriever(
    cooking_astronomy: HybridRetriever,
) -> None:
    store = HybridVectorStore(retriever=cooking_astronomy)
    pairs = store.similarity_search_with_relevance_scores(ON_TOPIC, k=3)
    found = cooking_astronomy.invoke(ON_TOPIC, k=3)
    assert [doc.id for doc, _ in pairs] == [d.id for d in found]
    assert [score for _, score in pairs] == pytest.approx(
        [d.metadata[RELEVANCE_KEY] for d in found], abs=1e-6
    )
    assert all(RELEVANCE_KEY not in doc.metadata for doc, _ in pairs)  # as added
    assert (
        store.similarity_search_with_relevance_scores(
            OFF_TOPIC, k=3, score_threshold=RECOMMENDED_THRESHOLD
        )
        == []
    )
    with pytest.raises(InvalidParameterError, match="score_threshold"):
        store.similarity_search_with_relevance_scores(ON_TOPIC, score_threshold=-1)
    retriever = store.as_retriever(
        search_type="similarity_score_threshold",
        search_kwargs={"score_threshold": RECOMMENDED_THRESHOLD, "k": 3},
    )
    assert retriever.invoke(OFF_TOPIC) == []
    assert retriever.invoke(ON_TOPIC)[0].metadata["topic"] == "cooking"
    with pytest.raises(InvalidParameterError, match="needs a threshold"):
        store.as_retriever(search_type="similarity_score_threshold")


def test_async_vectorstore_relevance_scores(cooking_astronomy: HybridRetriever) -> None:
    import asyncio

    store = HybridVectorStore(retriever=cooking_astronomy)
    pairs = asyncio.run(store.asimilarity_search_with_relevance_scores(ON_TOPIC, k=2))
    assert [score for _, score in pairs] == pytest.approx(
        [s for _, s in store.similarity_search_with_relevance_scores(ON_TOPIC, k=2)], abs=1e-6
    )
    assert (
        asyncio.run(
            store.asimilarity_search_with_relevance_scores(
                OFF_TOPIC, k=2, score_threshold=RECOMMENDED_THRESHOLD
            )
        )
        == []
    )


def test_a_stored_relevance_key_is_refused(make_retriever: object) -> None:
    from hybrid_retriever.errors import InvalidDocumentError

    retriever = make_retriever(collection_name="reserved")  # type: ignore[operator]
    with pytest.raises(InvalidDocumentError, match="_relevance"):
        retriever.add_texts(["text"], [{"_relevance": 1.0}], show_progress=False)
