"""Each query's ranked list per branch, searched once, and the id each hit is judged by.

``eval`` and ``tune`` score many fusion option sets per query; both search every branch
of the retriever once per query (:func:`search_branches`) and fuse those lists as often
as they need. Kept below :mod:`hybrid_retriever.evaluation` and
:mod:`hybrid_retriever.tuning`, which both use it, so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.branches import BM25, DENSE, SPARSE
from hybrid_retriever.fusion.rrf import BranchHit
from hybrid_retriever.search_options import DEFAULT_PREFETCH_K, check_k

if TYPE_CHECKING:
    from hybrid_retriever.retriever import HybridRetriever

__all__ = [
    "Rankings",
    "best_per_id",
    "hit_id",
    "retriever_branches",
    "search_branches",
    "stored_hit_id",
]

Rankings = dict[str, list[BranchHit]]
"""Branch name -> hits in rank order; hit ids are the dataset's document ids."""


def retriever_branches(retriever: HybridRetriever) -> tuple[str, ...]:
    """Every branch ``retriever`` can search (:meth:`HybridRetriever.available_branches`)."""
    return retriever.available_branches()


def search_branches(
    retriever: HybridRetriever,
    queries: Mapping[str, str],
    *,
    depth: int = DEFAULT_PREFETCH_K,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
    with_doc_ids: bool = True,
) -> dict[str, Rankings]:
    """Each query's list for every branch the retriever has, ``depth`` deep.

    One request per query for all its branches, exactly the search ``invoke`` makes (same
    encoders, vector names and filter), before fusion. Every branch is a key of each
    query's rankings (an empty list when it found nothing, or its query vector has no
    terms). Hit ids are the dataset's document ids, a document's chunks counting as its
    best one; ``with_doc_ids=False`` keeps point ids and fetches no payloads, which
    in-process engines decode slowly: for callers that map the few ids they keep afterwards.
    """
    from hybrid_retriever.storage.base import BranchQuery

    check_k(depth, "depth")
    if retriever.storage.get_layout(retriever.collection_name) is None:
        raise InvalidParameterError(
            f"Collection {retriever.collection_name!r} does not exist; index the dataset first."
        )
    branches = retriever_branches(retriever)
    names = {
        DENSE: retriever.dense_vector_name,
        SPARSE: retriever.sparse_vector_name,
        BM25: retriever.bm25_vector_name,
    }
    # Every branch searched (weight 1 each), whatever the retriever's own defaults.
    every = retriever._options(
        {"branches": list(branches), "weights": dict.fromkeys(branches, 1.0), "k": 1}
    )
    items: Iterable[tuple[str, str]] = queries.items()
    if progress is not None:
        items = progress(items)
    rankings: dict[str, Rankings] = {}
    for query_id, text in items:
        # Encoded as invoke encodes: the model encoders at once, on the retriever's thread.
        vectors = {
            branch: found[0] for branch, found in retriever._encode_queries([text], every).items()
        }
        branch_queries = {
            branch: BranchQuery(
                vector_name=names[branch], vector=vector, limit=depth, with_payload=with_doc_ids
            )
            for branch, vector in vectors.items()
            if len(vector) > 0
        }
        results = retriever.storage.search(
            retriever.collection_name, list(branch_queries.values()), retriever.filter
        )
        found = dict(zip(branch_queries, results, strict=True))
        rankings[query_id] = {
            branch: best_per_id(
                BranchHit(id=stored_hit_id(p.id, p.payload or {}), score=p.score)
                for p in found.get(branch, [])
            )
            for branch in branches
        }
    return rankings


def best_per_id(hits: Iterable[BranchHit]) -> list[BranchHit]:
    """The first (best) hit of each id, in order: a document's chunks count as its best."""
    best: dict[str, BranchHit] = {}
    for hit in hits:
        best.setdefault(hit.id, hit)
    return list(best.values())


def hit_id(document_id: str, metadata: Mapping[str, Any]) -> str:
    """The id a hit is judged by: for a chunk, the id of the document it was cut from
    (``metadata["source_id"]``, see :mod:`hybrid_retriever.chunking`); else the source's
    own document id (``metadata["doc_id"]``, as the CLI's sources store it) where there is
    one, else the document's id (what ``invoke`` returns as ``Document.id``)."""
    from hybrid_retriever.chunking import SOURCE_ID_KEY
    from hybrid_retriever.metadata_keys import DOC_ID_KEY

    return str(metadata.get(SOURCE_ID_KEY, metadata.get(DOC_ID_KEY, document_id)))


def stored_hit_id(point_id: str, payload: Mapping[str, Any]) -> str:
    """:func:`hit_id` of a stored point, from its payload."""
    from hybrid_retriever.collection import METADATA_KEY
    from hybrid_retriever.documents import document_id

    return hit_id(document_id(point_id, payload), payload.get(METADATA_KEY) or {})
