"""Refusing vectors that cannot be searched, wherever an encoder's output enters.

An encoder (a LangChain ``Embeddings``, a damaged model) can return NaN, infinity or a
dense vector of zeros. Nothing downstream says so: Qdrant Edge stores such a document and
no dense search ever finds it again (its cosine is undefined), and a query vector with a
NaN silently empties the dense branch. So every vector is checked here, once, on the
write path (``ingestion``) and the query path (``retriever``), before it reaches an
engine or the query cache, for every engine alike.

A sparse vector with no terms is legitimate (a query of stopwords only gives one; the
retriever skips that branch, a document with one is only found by dense search), so only
non-finite weights are refused there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hybrid_retriever.errors import InvalidDocumentError, InvalidQueryError
from hybrid_retriever.search_options import DENSE
from hybrid_retriever.vectors import SparseVector

_FIX = (
    "An encoder that returns this is broken (a failed API call, a damaged or wrongly "
    "quantised model); check it, or drop the text if only some texts cause it."
)


def vector_problem(vector: Any, *, branch: str) -> str | None:
    """What makes ``vector`` unsearchable, in words; None if it is fine."""
    import numpy as np  # here, not at import: the package imports this module

    values = vector.values if isinstance(vector, SparseVector) else vector
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return f"is not a list of numbers ({type(vector).__name__})"
    if array.ndim != 1:
        return f"is not a flat list of numbers (shape {array.shape})"
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        return f"holds {array[bad[0]]} at position {int(bad[0])} ({bad.size} non-finite values)"
    if branch == DENSE and not np.any(array):
        return "is all zeros, which has no direction to compare by"
    return None


def check_document_vectors(
    vectors: Sequence[Any],
    *,
    branch: str,
    encoder: str,
    documents: Sequence[tuple[int, str]],
) -> None:
    """Refuse the first bad vector of a batch; ``documents`` are each vector's
    (position in the input, id), so the error points at the document."""
    for vector, (position, document_id) in zip(vectors, documents, strict=True):
        problem = vector_problem(vector, branch=branch)
        if problem is not None:
            raise InvalidDocumentError(
                f"Document at position {position} (id {document_id!r}): the {branch} encoder "
                f"{encoder!r} returned a vector that {problem}, so it could never be found. "
                f"Nothing of this batch was written. {_FIX}"
            )


def check_query_vector(vector: Any, *, branch: str, encoder: str, query: str) -> None:
    """Refuse a query vector that would silently empty its branch."""
    problem = vector_problem(vector, branch=branch)
    if problem is not None:
        shown = query if len(query) <= 80 else query[:77] + "..."
        raise InvalidQueryError(
            f"The {branch} encoder {encoder!r} returned a vector for the query {shown!r} that "
            f"{problem}; searching with it would silently return nothing from that branch. "
            f"{_FIX}"
        )
