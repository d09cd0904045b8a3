"""The default branch weights: the dense share of a convex fusion grows with the query's length.

Our design, chosen with ``benchmarks/fusion_study.py`` over six real corpora (see the
README's fusion section). Per query, with ``n`` its number of words::

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

Words are runs of non-space characters, so the rule reads languages written with spaces;
the default models are English.
"""

from __future__ import annotations

import math

from hybrid_retriever.errors import InvalidParameterError

BASE = 0.5
"""Dense share at ``PIVOT_WORDS`` words."""
SLOPE = 0.05
"""Dense share added per doubling of the query's length."""
PIVOT_WORDS = 10
FLOOR = 0.3
CEILING = 0.8
"""Neither branch is ever weighted below 0.2: the other always has a say."""


def query_length_weights(
    query: str,
    *,
    base: float = BASE,
    slope: float = SLOPE,
    pivot_words: int = PIVOT_WORDS,
    floor: float = FLOOR,
    ceiling: float = CEILING,
) -> dict[str, float]:
    """``{"dense": a, "sparse": 1 - a}`` for ``query``, ``a`` as in the module docstring.

    The keyword arguments exist for the fusion study, which measures other settings of
    the same rule; the retriever uses the defaults.
    """
    if not 0 <= floor <= ceiling <= 1:
        raise InvalidParameterError(
            f"need 0 <= floor <= ceiling <= 1, got floor={floor}, ceiling={ceiling}."
        )
    if pivot_words < 1:
        raise InvalidParameterError(f"pivot_words must be >= 1, got {pivot_words}.")
    words = max(1, len(query.split()))
    dense = min(ceiling, max(floor, base + slope * math.log2(words / pivot_words)))
    return {"dense": dense, "sparse": 1.0 - dense}
