"""The default weights: the dense share grows with the query's length (``fusion/query_length.py``).

Values are computed by hand from ``dense = clip(0.5 + 0.05 * log2(words / 10), 0.3, 0.8)``.
"""

from __future__ import annotations

import math

import pytest

from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.query_length import query_length_weights


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


@pytest.mark.parametrize(
    ("n", "dense"),
    [
        (10, 0.5),
        (20, 0.55),
        (40, 0.6),
        (5, 0.45),
        (1, 0.5 - 0.05 * math.log2(10)),  # 0.33390
        (640, 0.8),  # 6 doublings: 0.5 + 0.3, the ceiling
        (5000, 0.8),  # clipped
    ],
)
def test_hand_computed_shares(n: int, dense: float) -> None:
    weights = query_length_weights(words(n))
    assert weights["dense"] == pytest.approx(dense, abs=1e-12)
    assert weights["dense"] + weights["sparse"] == pytest.approx(1.0, abs=1e-12)


def test_words_are_runs_of_non_space() -> None:
    assert query_length_weights("  a\tb\nc  d e ") == query_length_weights(words(5))
    # An empty or one-word query counts as one word.
    assert query_length_weights("") == query_length_weights("insulin")


def test_parameters_move_the_rule() -> None:
    assert query_length_weights(words(20), base=0.6, slope=0.1) == pytest.approx(
        {"dense": 0.7, "sparse": 0.3}
    )
    assert query_length_weights(words(1), slope=1.0)["dense"] == 0.3  # the floor
    assert query_length_weights(words(80), pivot_words=20)["dense"] == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"floor": 0.9, "ceiling": 0.8}, "floor <= ceiling"),
        ({"ceiling": 1.5}, "floor <= ceiling"),
        ({"pivot_words": 0}, "pivot_words must be >= 1"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        query_length_weights("a query", **kwargs)  # type: ignore[arg-type]
