"""How deep the ranked lists that fusion reads are: the default depth and its bounds.

Here, in the fusion package (which imports nothing above it), because a fusion config
carries ``prefetch_k`` and fuses lists cut to it; the query options
(``search_options``) take these from here, never the other way round.
"""

from __future__ import annotations

from typing import Any

from hybrid_retriever.errors import InvalidParameterError

DEFAULT_PREFETCH_K = 100
"""Candidates taken from each branch when ``prefetch_k`` is not set (or k, if larger)."""

MAX_K = 10_000
"""Upper bound for k and prefetch_k: beyond it a search is a scan, better done with scroll."""


def check_k(k: Any, name: str = "k") -> int:
    """``k`` (or ``prefetch_k``, named by ``name``) as a valid count of results."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise InvalidParameterError(f"{name} must be an integer >= 1, not {type(k).__name__}.")
    if k < 1:
        raise InvalidParameterError(f"{name} must be >= 1, got {k}.")
    if k > MAX_K:
        raise InvalidParameterError(
            f"{name}={k:,} is too large (at most {MAX_K:,}); to read a whole collection, "
            "scroll through it with qdrant-client instead."
        )
    return k
