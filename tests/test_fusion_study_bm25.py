"""The BM25 study's own pieces (``benchmarks/fusion_study.py --bm25``): its exact BM25
ranking is what Qdrant's ``IDF`` modifier returns, its pool is the pre-registered one
(``docs/bm25-study-plan.md``), and its choice is the best worst case."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("Stemmer", reason="the bm25 extra (PyStemmer) is not installed")

from hybrid_retriever.fusion.rrf import BranchHit

DOCS = [
    "the cat sat on the mat",
    "dogs and cats are running",
    "a running dog chases the cat cat",
    "stock markets fell sharply on monday",
    "the market for cat food is growing",
    "running shoes for marathon runners",
]
QUERIES = ["cat running", "market crash", "marathon", "zebra"]  # "zebra": in no document


@pytest.fixture(scope="module")
def study() -> ModuleType:
    path = Path(__file__).parents[1] / "benchmarks" / "fusion_study.py"
    spec = importlib.util.spec_from_file_location("fusion_study_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_exact_bm25_ranking_is_qdrants_idf_search(study: ModuleType) -> None:
    from qdrant_client import QdrantClient, models

    from hybrid_retriever.encoders.bm25 import Bm25Encoder

    encoder = Bm25Encoder(k1=1.2, b=0.75, avg_len=4)
    docs = encoder.encode_documents(DOCS)
    queries = encoder.encode_queries(QUERIES)
    scores = study.bm25_scores(queries, docs)
    client = QdrantClient(":memory:")
    client.create_collection(
        "c",
        vectors_config={},
        sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    client.upsert(
        "c",
        points=[
            models.PointStruct(
                id=i, vector={"bm25": models.SparseVector(indices=v.indices, values=v.values)}
            )
            for i, v in enumerate(docs)
        ],
    )
    for row, query in enumerate(queries):
        points = client.query_points(
            "c",
            query=models.SparseVector(indices=query.indices, values=query.values),
            using="bm25",
            limit=len(DOCS),
        ).points
        engine = {p.id: p.score for p in points if p.score > 0}
        ours = {i: s for i, s in enumerate(scores[row]) if s > 0}
        assert ours == pytest.approx(engine, rel=1e-5), QUERIES[row]
    assert not any(scores[QUERIES.index("zebra")])


def test_the_pool_is_the_pre_registered_one(study: ModuleType) -> None:
    pool = study.three_branch_candidates()
    families: dict[str, int] = {}
    for candidate in pool:
        families[candidate.family] = families.get(candidate.family, 0) + 1
    assert families == {
        "rrf3": 9,
        "convex3": 15,
        "convex-dense-bm25": 4,
        "length3": 24,
        "dbsf3": 2,
        "adaptive3": 2,
    }
    assert len({c.name for c in pool}) == 56
    assert len(study.BM25_SETTINGS) == 4
    # Every three-branch candidate gives BM25 a say; today's pool never searches it.
    assert all("bm25" in c.branches for c in pool)
    assert all(c.branches == ("dense", "sparse") for c in study.candidates())


def test_length_rule_with_all_lexical_weight_to_bm25_leaves_splade_unsearched(
    study: ModuleType,
) -> None:
    (rule,) = [
        c for c in study.three_branch_candidates() if c.name.endswith("0.5+0.05 bm25-part=1")
    ]
    lists = {
        "dense": [BranchHit(id="d1", score=0.9), BranchHit(id="d2", score=0.5)],
        "sparse": [BranchHit(id="s-only", score=50.0)],
        "bm25": [BranchHit(id="d2", score=7.0), BranchHit(id="b1", score=3.0)],
    }
    ids = {hit.id for hit in rule.fuse(lists, "a short query", {})}
    assert ids == {"d1", "d2", "b1"}


def test_choice_is_the_best_worst_case_then_the_best_mean(study: ModuleType) -> None:
    leads = {
        "a": {"steady": 0.010, "spiky": 0.050, "tied": 0.0104},
        "b": {"steady": 0.012, "spiky": -0.001, "tied": 0.0200},
    }
    assert study.choose_by_leads(leads, ["a", "b"], ["spiky", "steady", "tied"]) == "tied"
    assert study.choose_by_leads(leads, ["a"], ["spiky", "steady", "tied"]) == "spiky"
