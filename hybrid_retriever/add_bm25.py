"""Giving a collection written without BM25 a BM25 branch, without re-encoding anything else.

Neither engine can add a named vector to an existing collection: qdrant-client's
``update_collection(sparse_vectors_config=...)`` only changes vectors that exist ("Vector
bm25 does not exist in the collection"), the Qdrant server likewise, and Qdrant Edge has
no call that changes a shard's configuration. So the nearest honest thing is a copy:
:func:`copy_with_bm25` creates a new collection with the three vectors, reads every point
of the old one back with its stored dense and SPLADE vectors, adds the BM25 vector of its
stored text, and writes it. No model runs; the old collection is left as it was.

Safe to run again after a crash: points keep their ids, so a second run overwrites what
the first wrote. Points written to the old collection during the copy may be missed:
copy while nothing writes to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hybrid_retriever.collection import CONTENT_KEY
from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.branches import BM25
from hybrid_retriever.ingestion import DEFAULT_BATCH_SIZE
from hybrid_retriever.storage.base import StoredPoint
from hybrid_retriever.storage.point_copy import copy_points
from hybrid_retriever.vector_checks import check_document_vectors

if TYPE_CHECKING:
    from hybrid_retriever.encoders.bm25 import Bm25Encoder
    from hybrid_retriever.retriever import HybridRetriever


def copy_with_bm25(
    source: HybridRetriever,
    collection_name: str,
    *,
    bm25_encoder: bool | str | Bm25Encoder = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    show_progress: bool = True,
) -> HybridRetriever:
    """Copy ``source``'s collection into ``collection_name`` with a BM25 vector added from
    each point's stored text; return a retriever over the copy (same storage, encoders
    and options as ``source``, plus ``bm25_encoder``)."""
    from hybrid_retriever.retriever import HybridRetriever

    if collection_name == source.collection_name:
        raise InvalidParameterError(
            "The copy needs a new collection_name: Qdrant cannot add a vector to an "
            "existing collection."
        )
    # Exists, fits the encoders, written by their models; bm25_encoder left unset
    # ("auto") is resolved: to None for a collection without BM25.
    source._check_collection_once()
    if source.bm25_encoder is not None:
        raise InvalidParameterError(
            f"{source.collection_name!r} is opened with a BM25 branch already (it has a BM25 "
            "vector, or bm25_encoder asks for one); a collection without BM25 opens without "
            "it when bm25_encoder is left unset."
        )
    if bm25_encoder is None or bm25_encoder is False:
        raise InvalidParameterError("bm25_encoder must name a BM25 encoder, e.g. True.")
    fields = {name: getattr(source, name) for name in type(source).model_fields}
    target = HybridRetriever(
        **{**fields, "collection_name": collection_name, "bm25_encoder": bm25_encoder}
    )
    indexer = target._indexer()  # resolves True to the default encoder for a new copy
    bm25 = indexer.bm25_encoder
    if bm25 is None:  # pragma: no cover - the indexer of a BM25 retriever writes BM25
        raise InvalidParameterError("bm25_encoder must name a BM25 encoder, e.g. True.")
    indexer._ensure_collection()  # create and record, or check a half-done earlier copy
    storage, vector_name = source.storage, target.bm25_vector_name

    def with_bm25(points: list[StoredPoint]) -> list[StoredPoint]:
        texts = [str(p.payload.get(CONTENT_KEY) or "") for p in points]
        vectors = bm25.encode_documents(texts)
        check_document_vectors(
            vectors,
            branch=BM25,
            encoder=bm25.name,
            documents=[(i, p.id) for i, p in enumerate(points)],
        )
        return [
            StoredPoint(id=p.id, vectors={**p.vectors, vector_name: v}, payload=p.payload)
            for p, v in zip(points, vectors, strict=True)
        ]

    copy_points(
        storage,
        source.collection_name,
        storage,
        collection_name,
        batch_size=batch_size,
        transform=with_bm25,
        description=f"Adding BM25 into {collection_name!r}",
        total=source.count(),
        show_progress=show_progress,
    )
    storage.optimize(collection_name)
    target._verified = True
    return target
