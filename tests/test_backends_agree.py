"""Every backend returns the same top-k, in the same order, for the same documents."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hybrid_retriever import HybridRetriever

QUERIES = [
    "what causes type 2 diabetes?",
    "how are planets around other stars detected",
    "why does bread rise",
    "history of writing systems",
    "ways athletes save energy",
    "greenhouse gases and infrared",
    "learned sparse retrieval",
    "vitamin from sunlight",
]

# Dense cosine scores are computed in float32 by both engines, by different code
# (numpy vs Rust SIMD), so they may differ in the last digits; sparse dot products
# likewise. Ranks must agree exactly; raw scores within this relative tolerance.
SCORE_TOLERANCE = 1e-5


def test_same_results_on_every_backend(
    make_retriever: Callable[..., HybridRetriever], documents: list, tmp_path: Path
) -> None:
    backends = {
        "qdrant-client memory": make_retriever(engine="qdrant-client"),
        "qdrant-client disk": make_retriever(engine="qdrant-client", path=str(tmp_path / "qc")),
        "edge": make_retriever(engine="edge", path=str(tmp_path / "edge")),
    }
    for retriever in backends.values():
        retriever.add_documents(documents, show_progress=False)
        # qdrant-client's embedded mode scores the first searches after a write slightly
        # differently (~1e-8, as conftest's demo_retriever notes): a near-tie can flip.
        retriever.invoke("settle")
        retriever.invoke("settle again")

    for query in QUERIES:
        results = {name: r.invoke(query, k=8, prefetch_k=20) for name, r in backends.items()}
        reference = results.pop("edge")
        for name, docs in results.items():
            assert [d.id for d in docs] == [d.id for d in reference], (name, query)
            for mine, theirs in zip(docs, reference, strict=True):
                for branch, rank in mine.metadata["_ranks"].items():
                    if rank != theirs.metadata["_ranks"][branch]:
                        # Only equal scores (BM25 gives many) may be ordered differently.
                        ours, other = (d.metadata["_scores"][branch] for d in (mine, theirs))
                        assert ours is not None and other is not None, (name, query, branch)
                        assert ours == pytest.approx(other, rel=SCORE_TOLERANCE), (name, query)
                for branch, score in mine.metadata["_scores"].items():
                    other = theirs.metadata["_scores"][branch]
                    if score is None:
                        assert other is None
                    else:
                        assert score == pytest.approx(other, rel=SCORE_TOLERANCE), (name, query)
