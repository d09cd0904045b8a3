"""Refusing keyword arguments nobody reads, with a did-you-mean.

LangChain's pydantic models ignore unknown fields, so ``HybridRetriever(pth="./data")``
would build a retriever in a temporary folder and lose every document at exit, and
``fusoin="rrf"`` would keep the default fusion, both without a word. The constructors
check their keyword arguments here first.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from hybrid_retriever.errors import InvalidParameterError

SYNONYMS = {
    "top_k": "k",
    "n_results": "k",
    "limit": "k",
    "collection": "collection_name",
    "index_name": "collection_name",
    "embedding": "dense_encoder",
    "embeddings": "dense_encoder",
    "embedding_model": "dense_encoder",
    "sparse_embedding": "sparse_encoder",
    "sparse_embeddings": "sparse_encoder",
    "fusion_method": "fusion",
    "alpha": "weights",
}
"""What other libraries call our arguments, where the spelling is too far for difflib."""


def check_arguments(given: Iterable[str], accepted: Iterable[str], *, where: str) -> None:
    """Raise ``InvalidParameterError`` for the first name of ``given`` not in ``accepted``,
    suggesting the closest accepted name and listing them all."""
    names = sorted(set(accepted))
    unknown = [name for name in given if name not in names]
    if not unknown:
        return
    hints = []
    for name in unknown:
        match = SYNONYMS.get(name)
        if match not in names:
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            match = close[0] if close else None
        hints.append(f"{name!r}" + (f" (did you mean {match!r}?)" if match else ""))
    plural = "s" if len(unknown) > 1 else ""
    raise InvalidParameterError(
        f"{where} got unknown argument{plural} {', '.join(hints)}; it would be ignored. "
        f"The accepted arguments are: {', '.join(names)}."
    )
