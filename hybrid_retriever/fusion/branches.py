"""The names of the retrieval branches, as fusion and the query-length rule know them.

Kept in the fusion package (which imports nothing above it) so that the rule that
weights the branches and the code that searches them spell a branch the same way.
"""

from __future__ import annotations

DENSE = "dense"
SPARSE = "sparse"
"""The learned sparse branch (SPLADE)."""
BM25 = "bm25"
"""The lexical branch Qdrant scores with its ``IDF`` modifier (``encoders.bm25``)."""
ALL_BRANCHES = (DENSE, SPARSE, BM25)
LEXICAL_BRANCHES = (SPARSE, BM25)
"""The branches that match words: they share what the query-length rule leaves to words."""
TWO_BRANCHES = (DENSE, SPARSE)
"""The branches before BM25: what the default rule weights when no branches are named."""
