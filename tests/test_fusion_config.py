"""A fusion configuration: the default, its weights, the saved file, and one fusion step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.config import DEFAULT_FUSION_CONFIG, FusionConfig
from hybrid_retriever.fusion.methods import DEFAULT_FUSION, FusionMethod, default_weights
from hybrid_retriever.fusion.query_length import query_length_weights
from hybrid_retriever.fusion.rrf import BranchHit
from hybrid_retriever.search_options import resolve_search_options

RANKINGS = {
    "dense": [BranchHit("a", 0.9), BranchHit("b", 0.5), BranchHit("c", 0.1)],
    "sparse": [BranchHit("c", 12.0), BranchHit("d", 3.0), BranchHit("a", 1.0)],
}
TEN_WORDS = "one two three four five six seven eight nine ten"
SHORT = "c d"
LONG = " ".join(["word"] * 200)

# -- the default ---------------------------------------------------------------------------------


def test_only_the_default_method_has_default_weights() -> None:
    assert default_weights(DEFAULT_FUSION, TEN_WORDS) == {"dense": 0.5, "sparse": 0.5}
    assert default_weights(DEFAULT_FUSION, LONG) == query_length_weights(LONG)
    for method in FusionMethod:
        if method is not DEFAULT_FUSION:
            assert default_weights(method, TEN_WORDS) is None


def _options(**given: object) -> dict[str, float] | None:
    return resolve_search_options(
        k=4,
        prefetch_k=None,
        fusion=DEFAULT_FUSION,
        rrf_k=60,
        weights=None,
        query_filter=None,
        overrides=given,
    ).weights


def test_search_without_weights_leaves_the_default_to_each_query() -> None:
    assert _options() is None
    for method in FusionMethod:
        if method is not DEFAULT_FUSION:
            assert _options(fusion=method.value) == {"dense": 1.0, "sparse": 1.0}
    assert _options(weights={"dense": 1.0, "sparse": 2.0}) == {"dense": 1.0, "sparse": 2.0}


# Hand-computed from the paper formulas, independent of the package's constants: convex
# fusion of min-max normalised scores (dense a=1, b=0.5, c=0; sparse c=1, d=2/11, a=0),
# with the dense share 0.5 + 0.05 * log2(words / 10), clipped to [0.3, 0.8]:
#   "c d" (2 words): dense 0.5 + 0.05 * log2(0.2) = 0.383904, sparse 0.616096;
#   200 words: dense 0.5 + 0.05 * log2(20) = 0.716096, sparse 0.283904;
#   1000 words: 0.5 + 0.05 * log2(100) = 0.832 is above the ceiling: dense 0.8, sparse 0.2.
DEFAULT_FUSED = [
    pytest.param(SHORT, [("c", 0.616096), ("a", 0.383904), ("b", 0.191952)], id="2-words"),
    pytest.param(LONG, [("a", 0.716096), ("b", 0.358048), ("c", 0.283904)], id="200-words"),
    pytest.param(" ".join(["w"] * 1000), [("a", 0.8), ("b", 0.4), ("c", 0.2)], id="ceiling"),
]


@pytest.mark.parametrize(("query", "expected"), DEFAULT_FUSED)
def test_default_config_weighs_each_query_by_its_length(
    query: str, expected: list[tuple[str, float]]
) -> None:
    """Fails if the default method, the length rule or its constants change."""
    for config in (DEFAULT_FUSION_CONFIG, FusionConfig()):
        hits = config.fuse(RANKINGS, query=query, limit=3)
        assert [h.id for h in hits] == [doc for doc, _ in expected]
        assert [h.score for h in hits] == pytest.approx([s for _, s in expected], abs=1e-6)


def test_default_config_needs_the_query() -> None:
    with pytest.raises(InvalidParameterError, match="pass query="):
        DEFAULT_FUSION_CONFIG.fuse(RANKINGS)
    # Explicit weights do not depend on the query.
    config = FusionConfig(FusionMethod.CONVEX, {"dense": 0.5, "sparse": 0.5})
    assert config.fuse(RANKINGS) == DEFAULT_FUSION_CONFIG.fuse(RANKINGS, query=TEN_WORDS)


def test_config_fuse_truncates_to_prefetch_and_skips_zero_weight_branch() -> None:
    config = FusionConfig(FusionMethod.RRF, {"dense": 1.0, "sparse": 0.0}, prefetch_k=2)
    assert [h.id for h in config.fuse(RANKINGS)] == ["a", "b"]
    shallow = FusionConfig(FusionMethod.RRF, prefetch_k=1)
    assert {h.id for h in shallow.fuse(RANKINGS)} == {"a", "c"}


# -- the config file ------------------------------------------------------------------------------


def test_config_round_trip_and_retriever_kwargs(tmp_path: Path) -> None:
    config = FusionConfig(
        FusionMethod.CONVEX,
        {"dense": 0.7, "sparse": 0.3},
        prefetch_k=50,
        provenance={"dataset": "toy"},
    )
    path = config.save(tmp_path / "sub" / "fusion.json")
    loaded = FusionConfig.load(path)
    assert loaded == config
    assert loaded.provenance == {"dataset": "toy"}
    assert loaded.retriever_kwargs() == {
        "fusion": FusionMethod.CONVEX,
        "rrf_k": 60,
        "weights": {"dense": 0.7, "sparse": 0.3},
        "prefetch_k": 50,
    }
    assert json.loads(path.read_text())["fusion"] == "convex"


def test_retriever_accepts_the_config(tmp_path: Path) -> None:
    from hybrid_retriever import HybridRetriever

    config = FusionConfig(FusionMethod.DBSF, {"dense": 2.0, "sparse": 1.0}, prefetch_k=30)
    retriever = HybridRetriever(**config.retriever_kwargs(), path=str(tmp_path / "q"))
    try:
        assert retriever.fusion is FusionMethod.DBSF
        assert retriever.weights == {"dense": 2.0, "sparse": 1.0}
        assert retriever.prefetch_k == 30
    finally:
        retriever.close()


def test_default_config_sets_only_the_method() -> None:
    assert FusionConfig().search_options() == {"fusion": DEFAULT_FUSION, "rrf_k": 60}
    assert FusionConfig("rrf", rrf_k=20).describe() == "rrf rrf_k=20 prefetch_k=100"
    assert FusionConfig().describe() == (
        f"{DEFAULT_FUSION.value} weights=by query length (dense 0.5 at 10 words, "
        "+0.05 per doubling, 0.3-0.8) prefetch_k=100"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ('{"fusion": "rrf"}', "not a fusion config"),
        ('{"format": "hybrid-retriever/fusion-config", "version": 9}', "version 9"),
        (
            '{"format": "hybrid-retriever/fusion-config", "version": 1, "fusion": "best"}',
            "fusion must be one of",
        ),
        (
            '{"format": "hybrid-retriever/fusion-config", "version": 1, "prefetch_k": 0}',
            "prefetch_k must be >= 1",
        ),
        (
            '{"format": "hybrid-retriever/fusion-config", "version": 1, "weights": {"x": 1}}',
            "unknown branches",
        ),
    ],
)
def test_bad_config_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "fusion.json"
    path.write_text(content)
    with pytest.raises(InvalidParameterError, match=message):
        FusionConfig.load(path)


def test_missing_config_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="hybrid-retriever tune"):
        FusionConfig.load(tmp_path / "absent.json")
