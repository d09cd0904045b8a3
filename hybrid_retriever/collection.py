"""The collection layout the retriever needs, and the check against what exists.

One Qdrant collection holds one named dense vector and one named sparse vector
(SPLADE) per point, and (new collections, by default) a second named sparse vector for
BM25, with Qdrant's ``IDF`` modifier (the engine computes the IDF; ``encoders/bm25.py``);
and a payload of ``page_content`` plus ``metadata`` as langchain-qdrant writes it, plus
``document_id`` (the caller's own id) where the document had one. An existing collection is never
altered or dropped: if it does not fit, the user is told what differs and chooses what
to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from hybrid_retriever.advice import advise
from hybrid_retriever.errors import CollectionMismatchError
from hybrid_retriever.vector_storage import VectorStorage

CONTENT_KEY = "page_content"
METADATA_KEY = "metadata"
DOCUMENT_ID_KEY = "document_id"
"""The caller's id (``Document.id`` / ``ids=``), kept beside the content so results return
it; langchain-qdrant neither writes nor reads it (its point ids are the caller's ids)."""


class Distance(str, Enum):
    """Dense similarity function, named as Qdrant names it."""

    COSINE = "Cosine"
    DOT = "Dot"
    EUCLID = "Euclid"
    MANHATTAN = "Manhattan"


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    """What the retriever's encoders require of a collection."""

    name: str
    dense_vector_name: str
    dense_size: int
    distance: Distance
    sparse_vector_name: str
    bm25_vector_name: str | None = None
    """The BM25 vector's name; None: the collection has no BM25 branch."""
    storage: VectorStorage | None = None
    """How the dense vectors are kept (quantisation, on disk); None: the engine's default
    when creating, and whatever the collection has when opening."""

    @property
    def storage_to_create(self) -> VectorStorage:
        return self.storage if self.storage is not None else VectorStorage()


@dataclass(frozen=True, slots=True)
class DenseVectorInfo:
    size: int
    distance: Distance
    storage: VectorStorage | None = field(default_factory=VectorStorage)
    """How the vectors are kept; None: in a way this package does not describe (e.g.
    product quantisation set up outside it)."""


@dataclass(frozen=True, slots=True)
class SparseVectorInfo:
    idf_modifier: bool = False
    """True when the engine rescales sparse scores by IDF (meant for BM25, not SPLADE)."""


@dataclass(frozen=True, slots=True)
class CollectionLayout:
    """The vectors an existing collection has, as read from the engine."""

    dense: Mapping[str, DenseVectorInfo] = field(default_factory=dict)
    sparse: Mapping[str, SparseVectorInfo] = field(default_factory=dict)


def check_layout(spec: CollectionSpec, layout: CollectionLayout, *, encoder_name: str) -> None:
    """Raise ``CollectionMismatchError`` listing every way ``layout`` does not fit ``spec``."""
    problems: list[str] = []
    dense = layout.dense.get(spec.dense_vector_name)
    if dense is None:
        problems.append(
            f"it has no dense vector named {spec.dense_vector_name!r} "
            f"(dense vectors: {_names(layout.dense)})"
        )
    else:
        if dense.size != spec.dense_size:
            problems.append(
                f"its dense vector {spec.dense_vector_name!r} has {dense.size} dimensions but "
                f"the dense encoder {encoder_name!r} produces {spec.dense_size}"
            )
        if dense.distance != spec.distance:
            problems.append(
                f"its dense vector {spec.dense_vector_name!r} uses {dense.distance.value} "
                f"distance, not {spec.distance.value}"
            )
    sparse = layout.sparse.get(spec.sparse_vector_name)
    if sparse is None:
        problems.append(
            f"it has no sparse vector named {spec.sparse_vector_name!r} "
            f"(sparse vectors: {_names(layout.sparse)})"
        )
    elif sparse.idf_modifier:
        problems.append(
            f"its sparse vector {spec.sparse_vector_name!r} has Qdrant's IDF modifier, which "
            "is meant for BM25 and would distort SPLADE scores"
        )
    problems.extend(_bm25_problems(spec, layout))
    if dense is not None:
        problems.extend(_storage_problems(spec, dense))
    if problems:
        raise CollectionMismatchError(
            f"Collection {spec.name!r} does not fit this retriever: "
            + "; ".join(problems)
            + ". Nothing was changed. Pass the vector names and encoders the collection was "
            "built with (dense_vector_name=, sparse_vector_name=, dense_encoder=, distance=), "
            "or use a new collection_name."
        )


def check_writable(spec: CollectionSpec, layout: CollectionLayout) -> None:
    """Before a write: refuse to leave a BM25 vector of the collection empty. A retriever
    with ``bm25_encoder=False`` may search a three-branch collection, but documents it
    wrote would lack their BM25 vector and be silently missing from that branch."""
    unfilled = [
        name
        for name, info in layout.sparse.items()
        if info.idf_modifier and name not in (spec.sparse_vector_name, spec.bm25_vector_name)
    ]
    if unfilled:
        raise CollectionMismatchError(
            f"Collection {spec.name!r} has a BM25 vector {unfilled[0]!r} that this retriever "
            "does not write, so the documents it adds would be missing from BM25 results. "
            "Nothing was written. "
            + advise(
                python="Open it with bm25_encoder left unset or True, not False (and "
                "bm25_vector_name= if the vector has another name).",
                cli="Index without --no-bm25 (the collection has BM25), or into a new "
                "--collection.",
            )
        )


def _bm25_problems(spec: CollectionSpec, layout: CollectionLayout) -> list[str]:
    if spec.bm25_vector_name is None:
        return []
    bm25 = layout.sparse.get(spec.bm25_vector_name)
    if bm25 is None:
        return [
            f"it has no sparse vector named {spec.bm25_vector_name!r} for the BM25 branch "
            f"(sparse vectors: {_names(layout.sparse)}): it was written without BM25, and "
            "Qdrant cannot add a vector to an existing collection. Open it with "
            "bm25_encoder left unset (it then searches its two branches) or False, or copy "
            "it into a new collection with BM25: "
            "hybrid_retriever.add_bm25.copy_with_bm25(retriever, 'NEW_NAME')"
        ]
    if not bm25.idf_modifier:
        return [
            f"its sparse vector {spec.bm25_vector_name!r} lacks Qdrant's IDF modifier, "
            "without which BM25 vectors score without IDF"
        ]
    return []


def _storage_problems(spec: CollectionSpec, dense: DenseVectorInfo) -> list[str]:
    """Only when the caller asked for a storage: without one, the collection's own is used."""
    if spec.storage is None or dense.storage == spec.storage:
        return []
    if dense.storage is None:
        return [
            "its dense vectors are stored in a way this package does not describe (a "
            "quantisation other than int8 or binary?), so vector_storage= cannot be checked: "
            "open it without vector_storage="
        ]
    return [
        "its dense vectors are stored with "
        + ", ".join(spec.storage.differences(dense.storage))
        + " (storage is fixed when a collection is created; open it without "
        "vector_storage= to use its own)"
    ]


def _names(vectors: Mapping[str, object]) -> str:
    return ", ".join(repr(name) for name in vectors) or "none"
