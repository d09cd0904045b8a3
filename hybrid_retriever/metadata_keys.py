"""Metadata keys shared by the modules that read sources and the ones that split them.

Kept apart, below both, so that :mod:`hybrid_retriever.chunking` does not import the
source readers (:mod:`hybrid_retriever.sources`) for one name.
"""

from __future__ import annotations

DOC_ID_KEY = "doc_id"
"""Metadata key of a document's own id (a BEIR ``_id``, a JSON-lines ``id``, a text file's
relative path): the point id is derived from it, and results show it."""
