"""The default branch weights: the dense share of a convex fusion grows with the query's length.

Our design, chosen with ``benchmarks/fusion_study.py`` over six real corpora (see the
docs/fusion.md). Per query, with ``n`` its number of words::

    dense  = clip(base + slope * log2(n / pivot_words), floor, ceiling)
    sparse = 1 - dense

With the defaults, a 10-word query fuses the branches as equals; each doubling of its
length moves 0.05 of the weight to dense (0.38 at 2 words, 0.62 at 50, 0.72 at 200).

The slope was 0.0375 while the default encoders ran in fp32 (the fusion study's own
choice on its fp32 encodings). With the int8 encoders the same protocol, applied to the
int8 and fp32 encodings of the suite together (``benchmarks/backend_quality.py
--fusion``), chooses 0.05: 0.0375 left CISI, whose queries are long, 0.010 below dense
alone under int8.

Why length: a short keyword query is a lexical query, where the SPLADE branch is at its
best; a long natural-language query (a paragraph, an argument) is matched better by
meaning than by its many words, and SPLADE spreads its weight over all of them. On the
corpora measured, dense alone leads SPLADE alone by more the longer the query, both
within corpora and between them (CISI, median 50 words: dense 0.420, SPLADE 0.318,
equal-weight fusion 0.404). No labels, no state: the same query always gets the same
weights, whatever the collection.

With the third branch, BM25 (a default for new collections), the rule still sets the
dense share; what it leaves to words is split between the two lexical branches,
``bm25_fraction`` of it to BM25: 0.75 (SPLADE 0.25), chosen by the BM25 study
(``docs/bm25-study.md``) leave-one-corpus-out over the six corpora, with the base and
slope above, from a grid fixed before any fused score was seen (0.5 before it)::

    sparse = (1 - dense) * (1 - bm25_fraction)
    bm25   = (1 - dense) * bm25_fraction

A lexical branch alone with dense takes the whole lexical share; without dense, the
lexical branches split 1 the same way. With the two original branches the weights are
exactly those above.

Words are runs of non-space characters, so the rule reads languages written with spaces;
the default models are English.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.fusion.branches import ALL_BRANCHES, BM25, DENSE, SPARSE, TWO_BRANCHES

BASE = 0.5
"""Dense share at ``PIVOT_WORDS`` words."""
SLOPE = 0.05
"""Dense share added per doubling of the query's length."""
PIVOT_WORDS = 10
FLOOR = 0.3
CEILING = 0.8
"""Neither branch is ever weighted below 0.2: the other always has a say."""
BM25_FRACTION = 0.75
"""BM25's part of the lexical share when both SPLADE and BM25 are searched (the BM25
study's choice, docs/bm25-study.md)."""


def query_length_weights(
    query: str,
    *,
    branches: Iterable[str] = TWO_BRANCHES,
    base: float = BASE,
    slope: float = SLOPE,
    pivot_words: int = PIVOT_WORDS,
    floor: float = FLOOR,
    ceiling: float = CEILING,
    bm25_fraction: float = BM25_FRACTION,
) -> dict[str, float]:
    """The weight of each of ``branches`` for ``query``: ``{"dense": a, "sparse": 1 - a}``
    for the default two, ``a`` and the lexical split as in the module docstring.

    The keyword arguments exist for the fusion study, which measures other settings of
    the same rule; the retriever uses the defaults.
    """
    if not 0 <= floor <= ceiling <= 1:
        raise InvalidParameterError(
            f"need 0 <= floor <= ceiling <= 1, got floor={floor}, ceiling={ceiling}."
        )
    if pivot_words < 1:
        raise InvalidParameterError(f"pivot_words must be >= 1, got {pivot_words}.")
    if not 0 <= bm25_fraction <= 1:
        raise InvalidParameterError(f"bm25_fraction must be in [0, 1], got {bm25_fraction}.")
    named = _check_branches(branches)
    lexical = [b for b in (SPARSE, BM25) if b in named]
    if DENSE not in named:
        dense = 0.0
    elif not lexical:
        return {DENSE: 1.0}
    else:
        words = max(1, len(query.split()))
        dense = min(ceiling, max(floor, base + slope * math.log2(words / pivot_words)))
    rest = 1.0 - dense
    if len(lexical) == 2:
        shares = {SPARSE: rest * (1.0 - bm25_fraction), BM25: rest * bm25_fraction}
    else:
        shares = {lexical[0]: rest}
    return {DENSE: dense, **shares} if DENSE in named else shares


def _check_branches(branches: Iterable[str]) -> set[str]:
    if isinstance(branches, str):
        raise InvalidParameterError(
            f"branches must be a collection of branch names, such as {list(TWO_BRANCHES)}, "
            "not a str."
        )
    named = set(branches)
    unknown = sorted(named - set(ALL_BRANCHES))
    if unknown or not named:
        raise InvalidParameterError(
            f"branches must name one or more of {list(ALL_BRANCHES)}, got {sorted(named)}."
        )
    return named
