"""Properties of reciprocal rank fusion, and agreement with Qdrant's own RRF in both engines.

The tie rule these tests pin down (read off ``fusion.rrf``): fused scores are sorted
descending by a stable sort over the ids in first-seen order, so equal scores keep the
order in which the ids were first met walking the branches in mapping order, each from
rank 1 down. The retriever always passes the branches as (dense, sparse).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qdrant_client import models
from qdrant_client.hybrid.fusion import reciprocal_rank_fusion as qdrant_rrf

from hybrid_retriever import HybridRetriever, SentenceTransformerEncoder, SpladeEncoder
from hybrid_retriever.fusion.methods import FusionMethod, fuse
from hybrid_retriever.fusion.rrf import BranchHit, FusedHit, qdrant_rrf_k, reciprocal_rank_fusion
from hybrid_retriever.storage.base import BranchQuery
from hybrid_retriever.vectors import SparseVector

Rankings = dict[str, list[BranchHit]]

# A small id pool, so branches overlap and ties are common.
ranked_ids = st.lists(st.integers(min_value=0, max_value=25).map(str), unique=True, max_size=20)
rrf_ks = st.one_of(
    st.integers(min_value=0, max_value=100), st.floats(min_value=0.0, max_value=100.0)
)
# 0 included: a zero-weight branch still reports ranks; both-zero is refused by check_weights.
weights_values = st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5, 3.0])


def hits(ids: Sequence[str]) -> list[BranchHit]:
    return [BranchHit(id=i, score=100.0 - n) for n, i in enumerate(ids)]


def first_seen(rankings: Mapping[str, Sequence[BranchHit]]) -> dict[str, int]:
    order: dict[str, int] = {}
    for branch_hits in rankings.values():
        for hit in branch_hits:
            order.setdefault(hit.id, len(order))
    return order


@st.composite
def two_branches(draw: st.DrawFn) -> tuple[Rankings, dict[str, float] | None, float]:
    rankings = {"dense": hits(draw(ranked_ids)), "sparse": hits(draw(ranked_ids))}
    weights = draw(
        st.none() | st.fixed_dictionaries({"dense": weights_values, "sparse": weights_values})
    )
    if weights is not None and not any(weights.values()):
        weights["dense"] = 1.0
    return rankings, weights, draw(rrf_ks)


def fused_score(fused: list[FusedHit], doc_id: str) -> float:
    return next(h.score for h in fused if h.id == doc_id)


def position(fused: list[FusedHit], doc_id: str) -> int:
    return [h.id for h in fused].index(doc_id)


@settings(max_examples=200, deadline=None)
@given(case=two_branches())
def test_order_is_score_then_first_seen(
    case: tuple[Rankings, dict[str, float] | None, float],
) -> None:
    """The whole output order is specified: score descending, ties by first-seen order."""
    rankings, weights, rrf_k = case
    fused = reciprocal_rank_fusion(rankings, rrf_k=rrf_k, weights=weights)
    seen = first_seen(rankings)
    assert [h.id for h in fused] == sorted(seen, key=lambda i: (-fused_score(fused, i), seen[i]))
    # Every id of every branch appears once, with the ranks and raw scores it came with.
    assert sorted(h.id for h in fused) == sorted(seen)
    for hit in fused:
        for branch, branch_hits in rankings.items():
            ids = [h.id for h in branch_hits]
            expected_rank = ids.index(hit.id) + 1 if hit.id in ids else None
            assert hit.ranks[branch] == expected_rank
            assert hit.scores[branch] == (
                None if expected_rank is None else branch_hits[expected_rank - 1].score
            )


@settings(max_examples=200, deadline=None)
@given(case=two_branches())
def test_branch_order_changes_only_tie_order(
    case: tuple[Rankings, dict[str, float] | None, float],
) -> None:
    """Swapping which branch comes first leaves every score, rank and raw score as it was;
    only ids with exactly equal scores may swap places (first-seen order changes)."""
    rankings, weights, rrf_k = case
    forward = reciprocal_rank_fusion(rankings, rrf_k=rrf_k, weights=weights)
    swapped = reciprocal_rank_fusion(dict(reversed(rankings.items())), rrf_k=rrf_k, weights=weights)
    by_id = {h.id: h for h in swapped}
    assert {h.id for h in forward} == set(by_id)
    for hit in forward:
        # Two terms: a + b == b + a exactly in floating point, so no tolerance is needed.
        assert hit.score == by_id[hit.id].score
        assert hit.ranks == by_id[hit.id].ranks
        assert hit.scores == by_id[hit.id].scores
    assert [h.score for h in forward] == [h.score for h in swapped]
    if len({h.score for h in forward}) == len(forward):
        assert [h.id for h in forward] == [h.id for h in swapped]


@settings(max_examples=200, deadline=None)
@given(case=two_branches(), data=st.data())
def test_a_better_rank_never_hurts(
    case: tuple[Rankings, dict[str, float] | None, float], data: st.DataObject
) -> None:
    """Moving one id up in one branch (or into a branch that lacked it) never lowers its
    fused score or position, and never raises any other id's score."""
    rankings, weights, rrf_k = case
    before = reciprocal_rank_fusion(rankings, rrf_k=rrf_k, weights=weights)
    if not before:
        return
    doc_id = data.draw(st.sampled_from(sorted(h.id for h in before)), label="doc")
    branch = data.draw(st.sampled_from(sorted(rankings)), label="branch")
    ids = [h.id for h in rankings[branch]]
    old = ids.index(doc_id) if doc_id in ids else len(ids)
    new = data.draw(st.integers(min_value=0, max_value=old), label="new position")
    if doc_id in ids:
        ids.remove(doc_id)
    ids.insert(new, doc_id)
    improved = {**rankings, branch: hits(ids)}
    after = reciprocal_rank_fusion(improved, rrf_k=rrf_k, weights=weights)

    assert fused_score(after, doc_id) >= fused_score(before, doc_id)
    assert position(after, doc_id) <= position(before, doc_id)
    for hit in before:
        if hit.id != doc_id:
            assert fused_score(after, hit.id) <= hit.score


@settings(max_examples=100, deadline=None)
@given(case=two_branches(), limit=st.integers(min_value=1, max_value=50))
def test_same_input_same_output_and_limit_is_a_prefix(
    case: tuple[Rankings, dict[str, float] | None, float], limit: int
) -> None:
    """Ties are broken deterministically: rebuilt input gives an identical result, and the
    ``limit`` cut is the head of the full list (the retriever's k)."""
    rankings, weights, rrf_k = case
    first = reciprocal_rank_fusion(rankings, rrf_k=rrf_k, weights=weights)
    rebuilt = {b: [BranchHit(h.id, h.score) for h in hs] for b, hs in rankings.items()}
    assert reciprocal_rank_fusion(rebuilt, rrf_k=rrf_k, weights=weights) == first
    limited = reciprocal_rank_fusion(rankings, rrf_k=rrf_k, weights=weights, limit=limit)
    assert limited == first[:limit]


@settings(max_examples=100, deadline=None)
@given(case=two_branches())
def test_fuse_dispatches_rrf_unchanged(
    case: tuple[Rankings, dict[str, float] | None, float],
) -> None:
    rankings, weights, rrf_k = case
    assert fuse(
        rankings, method=FusionMethod.RRF, weights=weights, rrf_k=rrf_k, limit=10
    ) == reciprocal_rank_fusion(rankings, rrf_k=rrf_k, weights=weights, limit=10)


@settings(max_examples=100, deadline=None)
@given(case=two_branches())
def test_doubling_every_weight_doubles_scores_exactly(
    case: tuple[Rankings, dict[str, float] | None, float],
) -> None:
    """Only relative weights matter: scaling by 2 is exact in binary floating point, so
    scores double exactly and the order (ties included) is unchanged."""
    rankings, weights, rrf_k = case
    base = weights or {"dense": 1.0, "sparse": 1.0}
    one = reciprocal_rank_fusion(rankings, rrf_k=rrf_k, weights=base)
    two = reciprocal_rank_fusion(rankings, rrf_k=rrf_k, weights={b: 2 * w for b, w in base.items()})
    assert [h.id for h in two] == [h.id for h in one]
    assert [h.score for h in two] == [2 * h.score for h in one]


@settings(max_examples=100, deadline=None)
@given(dense=ranked_ids, sparse=ranked_ids, rrf_k=rrf_ks)
def test_zero_weight_branch_only_appends(dense: list[str], sparse: list[str], rrf_k: float) -> None:
    """With the sparse weight at 0 the result is the dense list in its own order, followed
    by the sparse-only ids at score 0 (still reporting their sparse ranks)."""
    fused = reciprocal_rank_fusion(
        {"dense": hits(dense), "sparse": hits(sparse)}, rrf_k=rrf_k, weights={"sparse": 0.0}
    )
    sparse_only = [i for i in sparse if i not in dense]
    assert [h.id for h in fused] == dense + sparse_only
    assert all(h.score == 0.0 for h in fused[len(dense) :])
    assert all(h.ranks["sparse"] == sparse.index(h.id) + 1 for h in fused if h.id in sparse)


def test_tie_rule_examples() -> None:
    """Equal scores keep first-seen order, so with one hit per branch the first branch
    wins; swapping branches swaps them. Same-rank ids in one branch cannot tie."""
    dense_first = reciprocal_rank_fusion({"dense": hits(["a"]), "sparse": hits(["b"])})
    sparse_first = reciprocal_rank_fusion({"sparse": hits(["b"]), "dense": hits(["a"])})
    assert dense_first[0].score == dense_first[1].score
    assert [h.id for h in dense_first] == ["a", "b"]
    assert [h.id for h in sparse_first] == ["b", "a"]
    # a: ranks (1, 3); b: (3, 1): equal sums, a met first.
    crossed = reciprocal_rank_fusion(
        {"dense": hits(["a", "x", "b"]), "sparse": hits(["b", "y", "a"])}
    )
    assert [h.id for h in crossed][:2] == ["a", "b"]


@settings(max_examples=150, deadline=None)
@given(
    branches=st.lists(ranked_ids.map(lambda ids: [int(i) for i in ids]), min_size=1, max_size=4),
    rrf_k=st.integers(min_value=0, max_value=100),
)
def test_any_number_of_branches_matches_qdrant_client(
    branches: list[list[int]], rrf_k: int
) -> None:
    """Beyond the two-branch case in test_rrf: 1 to 4 branches, same ids in the same order."""

    def response(ids: list[int]) -> list[models.ScoredPoint]:
        return [models.ScoredPoint(id=i, version=0, score=1.0 / (n + 1)) for n, i in enumerate(ids)]

    theirs = qdrant_rrf(
        [response(b) for b in branches], limit=1000, ranking_constant_k=qdrant_rrf_k(rrf_k)
    )
    ours = reciprocal_rank_fusion(
        {f"b{n}": hits([str(i) for i in b]) for n, b in enumerate(branches)}, rrf_k=rrf_k
    )
    assert [h.id for h in ours] == [str(p.id) for p in theirs]
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.score == pytest.approx(reference.score, rel=1e-12)


# -- engine level: the retriever against the engines' own server-side RRF -----------------

ENGINE_QUERIES = [
    "what causes type 2 diabetes?",
    "why does bread rise",
    "learned sparse retrieval",
    "vitamin from sunlight",
    "how are planets around other stars detected",
    "zebra",  # matches almost nothing: many single-branch hits and ties
]
PREFETCH = 10


@pytest.fixture(scope="module")
def qdrant_client_retriever(
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
    documents: list,
) -> Iterator[HybridRetriever]:
    retriever = HybridRetriever.from_documents(
        documents,
        collection_name="demo",
        engine="qdrant-client",
        fusion="rrf",
        dense_encoder=dense_encoder,
        sparse_encoder=sparse_encoder,
        bm25_encoder=False,  # compared with the engine's RRF over the same two prefetches
        show_progress=False,
    )
    yield retriever
    retriever.close()


def query_vectors(retriever: HybridRetriever, query: str) -> tuple[list[float], SparseVector]:
    return (
        list(retriever.dense_encoder.encode_query(query)),
        retriever.sparse_encoder.encode_query(query),
    )


@pytest.mark.parametrize("rrf_k", [0, 1, 60])
@pytest.mark.parametrize("query", ENGINE_QUERIES)
def test_retriever_equals_qdrant_client_server_side_rrf(
    qdrant_client_retriever: HybridRetriever, query: str, rrf_k: int
) -> None:
    """Same ids in the same order as qdrant-client's own ``RrfQuery`` over the same two
    prefetches, ties and the k cut included (both break ties by first-seen order)."""
    retriever = qdrant_client_retriever
    ours = retriever.invoke(query, k=PREFETCH, prefetch_k=PREFETCH, rrf_k=rrf_k)
    dense, sparse = query_vectors(retriever, query)
    theirs = retriever.storage.client.query_points(  # type: ignore[attr-defined]
        retriever.collection_name,
        prefetch=[
            models.Prefetch(query=dense, using="dense", limit=PREFETCH),
            models.Prefetch(
                query=models.SparseVector(indices=sparse.indices, values=sparse.values),
                using="sparse",
                limit=PREFETCH,
            ),
        ],
        query=models.RrfQuery(rrf=models.Rrf(k=qdrant_rrf_k(rrf_k))),
        limit=PREFETCH,
    ).points
    assert [d.metadata["_id"] for d in ours] == [str(p.id) for p in theirs]
    for doc, point in zip(ours, theirs, strict=True):
        assert doc.metadata["_score"] == pytest.approx(point.score, rel=1e-12)


@pytest.mark.parametrize("rrf_k", [0, 60])
def test_retriever_agrees_with_edge_server_side_rrf(
    make_retriever: Callable[..., HybridRetriever], documents: list, tmp_path: Path, rrf_k: int
) -> None:
    """Qdrant's Rust RRF (in Edge) scores in float32 and breaks ties in an arbitrary order
    that can change from one call to the next, so: same ids, scores within float32
    precision, and our order never puts an id above one that Edge scores clearly higher."""
    from qdrant_edge import EdgeShard, Fusion, Prefetch, Query, QueryRequest
    from qdrant_edge import SparseVector as EdgeSparseVector

    retriever = make_retriever(
        collection_name="demo", engine="edge", path=str(tmp_path), fusion="rrf", bm25_encoder=False
    )
    retriever.add_documents(documents, show_progress=False)
    ours: dict[str, list[FusedHit]] = {}
    vectors: dict[str, tuple[list[float], SparseVector]] = {}
    for query in ENGINE_QUERIES:
        vectors[query] = query_vectors(retriever, query)
        # Fused without a cut (up to 2 x PREFETCH ids), so ties at the cut cannot differ.
        branches = retriever.storage.search(
            retriever.collection_name,
            [
                BranchQuery(vector_name="dense", vector=vectors[query][0], limit=PREFETCH),
                BranchQuery(vector_name="sparse", vector=vectors[query][1], limit=PREFETCH),
            ],
            None,
        )
        ours[query] = reciprocal_rank_fusion(
            {
                name: [BranchHit(p.id, p.score) for p in points]
                for name, points in zip(("dense", "sparse"), branches, strict=True)
            },
            rrf_k=rrf_k,
        )
        # And the retriever's own top k is the head of that list.
        top = retriever.invoke(query, k=PREFETCH, prefetch_k=PREFETCH, rrf_k=rrf_k)
        assert [d.metadata["_id"] for d in top] == [h.id for h in ours[query][:PREFETCH]]
    retriever.close()

    shard = EdgeShard.load(str(tmp_path / "demo"))
    try:
        for query, (dense, sparse) in vectors.items():
            theirs = shard.query(
                QueryRequest(
                    limit=2 * PREFETCH,
                    prefetches=[
                        Prefetch(limit=PREFETCH, query=Query.Nearest(dense, using="dense")),
                        Prefetch(
                            limit=PREFETCH,
                            query=Query.Nearest(
                                EdgeSparseVector(indices=sparse.indices, values=sparse.values),
                                using="sparse",
                            ),
                        ),
                    ],
                    query=Fusion.Rrf(k=qdrant_rrf_k(rrf_k)),
                    with_payload=False,
                )
            )
            edge_scores = {str(p.id): p.score for p in theirs}
            assert set(edge_scores) == {h.id for h in ours[query]}, query
            for hit in ours[query]:
                assert hit.score == pytest.approx(edge_scores[hit.id], rel=1e-6), query
            for above, below in zip(ours[query], ours[query][1:], strict=False):
                assert edge_scores[above.id] >= edge_scores[below.id] * (1 - 1e-6), query
    finally:
        shard.close()
