"""The collection check, on hand-made layouts."""

from __future__ import annotations

import pytest

from hybrid_retriever.collection import (
    CollectionLayout,
    CollectionSpec,
    DenseVectorInfo,
    Distance,
    SparseVectorInfo,
    check_layout,
)
from hybrid_retriever.errors import CollectionMismatchError

SPEC = CollectionSpec("docs", "dense", 384, Distance.COSINE, "sparse")


def test_matching_layout_passes() -> None:
    layout = CollectionLayout(
        dense={"dense": DenseVectorInfo(384, Distance.COSINE)},
        sparse={"sparse": SparseVectorInfo()},
    )
    check_layout(SPEC, layout, encoder_name="m")


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (
            CollectionLayout(dense={"": DenseVectorInfo(384, Distance.COSINE)}),
            "no dense vector named 'dense' \\(dense vectors: ''\\)",
        ),
        (
            CollectionLayout(
                dense={"dense": DenseVectorInfo(768, Distance.COSINE)},
                sparse={"sparse": SparseVectorInfo()},
            ),
            "has 768 dimensions but the dense encoder 'm' produces 384",
        ),
        (
            CollectionLayout(
                dense={"dense": DenseVectorInfo(384, Distance.EUCLID)},
                sparse={"sparse": SparseVectorInfo()},
            ),
            "uses Euclid distance, not Cosine",
        ),
        (
            CollectionLayout(dense={"dense": DenseVectorInfo(384, Distance.COSINE)}),
            "no sparse vector named 'sparse' \\(sparse vectors: none\\)",
        ),
        (
            CollectionLayout(
                dense={"dense": DenseVectorInfo(384, Distance.COSINE)},
                sparse={"sparse": SparseVectorInfo(idf_modifier=True)},
            ),
            "IDF modifier",
        ),
    ],
)
def test_mismatches_are_named(layout: CollectionLayout, message: str) -> None:
    with pytest.raises(CollectionMismatchError, match=message) as error:
        check_layout(SPEC, layout, encoder_name="m")
    assert "Nothing was changed" in str(error.value)
