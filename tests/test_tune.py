"""Cross-validated tuning: the fold arithmetic, the choice, the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybrid_retriever.cli import main
from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.config import FusionConfig
from hybrid_retriever.fusion.methods import FusionMethod
from hybrid_retriever.fusion.rrf import BranchHit
from hybrid_retriever.tuning import (
    candidate_configs,
    cross_validate,
    fused_ids,
    per_query_ndcg,
    tune,
    untuned_configs,
)

THREE = ("dense", "sparse", "bm25")

# -- scoring and cross-validation ----------------------------------------------------------------


def test_candidate_grid() -> None:
    grid = candidate_configs(prefetch_grid=(100,))
    # 2 single branches + 5 ratios x (3 RRF k + DBSF + adaptive) + 9 convex alphas
    assert len(grid) == 2 + 5 * 5 + 9
    assert len(set(grid)) == len(grid)
    assert {c.method for c in grid} == set(FusionMethod)


def test_candidate_grid_over_three_branches() -> None:
    grid = candidate_configs(prefetch_grid=(100,), branches=THREE)
    # 3 single branches + (3 pairs x 5 ratios + 7 mixes of 1 and 2) x (3 RRF k + DBSF +
    # adaptive) + convex: 3 pairs x 9 alphas + 36 mixes of all three in steps of 0.1
    assert len(grid) == 3 + (3 * 5 + 7) * 5 + (3 * 9 + 36)
    assert len(set(grid)) == len(grid)
    assert {c.method for c in grid} == set(FusionMethod)
    # Every candidate names all three weights: one left out would count as 1.
    assert all(c.weights is not None and set(c.weights) == set(THREE) for c in grid)
    # The two-branch grid is in it, BM25 at 0: tuning can find that BM25 does not pay.
    three = set(grid)
    for two in candidate_configs(prefetch_grid=(100,)):
        assert two.weights is not None
        with_bm25 = {**two.weights, "bm25": 0.0}
        assert FusionConfig(two.method, with_bm25, two.rrf_k, prefetch_k=100) in three
    for config in grid:
        if config.method is FusionMethod.CONVEX:
            assert config.weights is not None
            assert sum(config.weights.values()) == pytest.approx(1.0)
            assert sum(w > 0 for w in config.weights.values()) >= 2


def test_candidate_grid_refuses_other_branch_sets() -> None:
    with pytest.raises(InvalidParameterError, match="branches must be"):
        candidate_configs(branches=("dense", "bm25"))


def test_untuned_baselines_follow_the_branches() -> None:
    assert list(untuned_configs()) == ["dense", "sparse", "convex (default)"]
    three = untuned_configs(THREE)
    assert list(three) == ["dense", "sparse", "bm25", "convex (default)"]
    assert three["bm25"].weights == {"dense": 0.0, "sparse": 0.0, "bm25": 1.0}
    assert three["convex (default)"] == FusionConfig()


def test_fused_ids_truncates_to_prefetch_and_skips_zero_weight_branch() -> None:
    rankings = {
        "dense": [BranchHit("a", 0.9), BranchHit("b", 0.8), BranchHit("c", 0.7)],
        "sparse": [BranchHit("c", 9.0), BranchHit("d", 1.0)],
    }
    dense_only = FusionConfig("rrf", {"dense": 1.0, "sparse": 0.0}, prefetch_k=2)
    assert fused_ids(rankings, dense_only, query="q", k=10) == ["a", "b"]
    both = FusionConfig("rrf", prefetch_k=1)
    assert fused_ids(rankings, both, query="q", k=10) == ["a", "c"]


def test_cross_validate_hand_computed() -> None:
    # seed 0 shuffles q1..q4 to q3, q1, q2, q4; fold parts are every 2nd: [q3, q2], [q1, q4].
    table = [
        {"q1": 1.0, "q2": 1.0, "q3": 0.0, "q4": 0.0},
        {"q1": 0.0, "q2": 0.5, "q3": 1.0, "q4": 1.0},
    ]
    configs = [FusionConfig("rrf"), FusionConfig("convex")]
    first, second = cross_validate(table, configs, folds=2, seed=0)
    # Fold 1 trains on q1, q4: both configs 0.5, the tie goes to the first; held out q3, q2.
    assert (first.chosen, first.train_ndcg, first.held_out_ndcg) == (configs[0], 0.5, 0.5)
    # Fold 2 trains on q3, q2: convex 0.75 beats rrf 0.5; held out q1, q4: (0 + 1) / 2.
    assert (second.chosen, second.train_ndcg, second.held_out_ndcg) == (configs[1], 0.75, 0.5)
    assert first.num_queries == second.num_queries == 2


def test_cross_validate_refuses_too_few_queries() -> None:
    with pytest.raises(InvalidParameterError, match="cannot be split into 5 folds"):
        cross_validate([{"q1": 1.0}], [FusionConfig()], folds=5)
    with pytest.raises(InvalidParameterError, match="folds must be >= 2"):
        cross_validate([{"q1": 1.0}], [FusionConfig()], folds=1)


def synthetic_rankings(n: int) -> tuple[dict[str, dict[str, list[BranchHit]]], dict]:  # type: ignore[type-arg]
    """Dense always puts the relevant document first, sparse puts it tenth."""
    rankings = {}
    qrels = {}
    for q in range(n):
        relevant = f"rel{q}"
        noise = [f"n{q}_{i}" for i in range(20)]
        rankings[f"q{q}"] = {
            "dense": [BranchHit(relevant, 0.9)]
            + [BranchHit(d, 0.5 - i * 0.01) for i, d in enumerate(noise[:10])],
            "sparse": [BranchHit(d, 20.0 - i) for i, d in enumerate(noise[10:19])]
            + [BranchHit(relevant, 5.0)],
        }
        qrels[f"q{q}"] = {relevant: 1}
    return rankings, qrels


def texts(rankings: dict[str, object]) -> dict[str, str]:
    return {q: f"query {q}" for q in rankings}


def test_per_query_ndcg_hand_computed() -> None:
    rankings, qrels = synthetic_rankings(2)
    dense, sparse = per_query_ndcg(
        [FusionConfig("rrf", {"sparse": 0.0}), FusionConfig("rrf", {"dense": 0.0})],
        rankings,
        qrels,
        queries=texts(rankings),
    )
    assert dense == {"q0": 1.0, "q1": 1.0}
    # one relevant document at rank 10: nDCG@10 = 1 / log2(11)
    assert sparse == pytest.approx({"q0": 0.28906482631788766, "q1": 0.28906482631788766})


def test_tune_picks_a_config_that_ranks_dense_first() -> None:
    rankings, qrels = synthetic_rankings(10)
    result = tune(rankings, qrels, queries=texts(rankings), folds=2)
    assert result.ndcg == 1.0
    assert result.held_out_scores == [1.0, 1.0]
    assert result.held_out_std == 0.0
    assert result.baselines["dense"] == 1.0
    assert result.baselines["sparse"] == pytest.approx(0.28906482631788766)
    assert "held-out nDCG@10: mean 1.0000, std 0.0000" in result.report()
    assert result.top[0] == (result.config, 1.0)


def test_tune_over_three_branches_finds_the_branch_that_ranks_first() -> None:
    # Dense and SPLADE put the relevant document tenth; BM25 puts it first.
    rankings, qrels = synthetic_rankings(10)
    for q, lists in rankings.items():
        relevant = lists["dense"][0]
        lists["dense"] = [*lists["dense"][1:10], relevant]
        noise = [BranchHit(f"b{q}_{i}", 9.0 - i) for i in range(9)]
        lists["bm25"] = [BranchHit(relevant.id, 12.0), *noise]
    result = tune(rankings, qrels, queries=texts(rankings), folds=2)
    assert list(result.baselines) == ["dense", "sparse", "bm25", "convex (default)"]
    assert result.baselines["bm25"] == 1.0
    assert result.baselines["dense"] == pytest.approx(0.28906482631788766)
    assert result.ndcg == 1.0
    assert result.config.weights is not None
    assert set(result.config.weights) == set(THREE)  # chosen from the three-branch grid
    assert result.config.weights["bm25"] > 0


def test_tune_refuses_unjudged_queries() -> None:
    rankings, _ = synthetic_rankings(3)
    with pytest.raises(InvalidParameterError, match="None of the queries"):
        tune(rankings, {"other": {"d": 1}}, queries=texts(rankings))


# -- the command ---------------------------------------------------------------------------------

CORPUS = [
    ("d1", "Bread", "Yeast ferments sugars in bread dough and releases carbon dioxide."),
    ("d2", "Sourdough", "A sourdough starter is wild yeast and lactic acid bacteria."),
    ("d3", "Pasta", "Fresh pasta is made from flour and eggs, kneaded and rolled thin."),
    ("d4", "Transits", "Astronomers find planets around other stars by the dip in starlight."),
    ("d5", "Radial velocity", "A planet makes its host star wobble, which reveals it."),
    ("d6", "Insulin", "Type 2 diabetes develops when cells become resistant to insulin."),
    ("d7", "Sleep", "Adults need seven to nine hours of sleep."),
]
QUERIES = {
    "q1": ("why does bread dough rise", "d1"),
    "q2": ("how are exoplanets detected", "d4"),
    "q3": ("what causes type 2 diabetes", "d6"),
    "q4": ("how much sleep do adults need", "d7"),
    "q5": ("what is a sourdough starter", "d2"),
    "q6": ("how is fresh pasta made", "d3"),
}


def write_toy(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in CORPUS)
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, (t, _) in QUERIES.items())
    )
    for split, queries in (("train", ["q1", "q2", "q3", "q4"]), ("test", ["q5", "q6"])):
        rows = "".join(f"{q}\t{QUERIES[q][1]}\t1\n" for q in queries)
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


@pytest.mark.slow
def test_tune_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_toy(tmp_path / "toy")
    out = tmp_path / "fusion.json"
    status = main(
        [
            "tune",
            str(data),
            "--split",
            "train",
            "--test-split",
            "test",
            "--folds",
            "2",
            "--memory",
            "--no-progress",
            "--out",
            str(out),
            "--bm25",
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "toy (train): 4 judged queries" in printed
    assert "chosen: " in printed
    assert printed.count("  fold ") == 2
    assert "held-out nDCG@10: mean" in printed
    assert "test split (2 queries, not used to choose)" in printed
    config = FusionConfig.load(out)
    assert config.provenance["split"] == "train"
    # BM25 is searched and tuned over (the flag's default): weights name all three.
    assert config.provenance["branches"] == list(THREE)
    assert "bm25" in config.provenance["untuned"]
    assert config.weights is None or set(config.weights) == set(THREE)
    assert len(config.provenance["held_out_ndcg_per_fold"]) == 2
    assert "test_ndcg" in config.provenance
