"""Documents longer than an encoder reads are cut by it without a word; say so.

A transformer encoder reads at most ``max_seq_length`` tokens (256 for the default
dense model): the rest of a longer document is dropped, so that branch cannot find
text past that point. Indexing does not split documents (a document is what the
caller gave), but it counts those that will be cut and warns once per call, pointing
to :class:`~hybrid_retriever.HybridTextSplitter` (or, under the command line, to its
chunking flags).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hybrid_retriever.advice import advise
from hybrid_retriever.encoders.budget import token_heads
from hybrid_retriever.errors import TruncationWarning  # re-exported

SPLITTER_HINT = (
    "Split long documents before indexing with hybrid_retriever.HybridTextSplitter, which "
    "sizes chunks to what the encoders read: "
    "HybridTextSplitter.for_retriever(retriever).split_documents(documents)."
)
CLI_SPLITTER_HINT = (
    "On the command line: 'eval --chunking' indexes such documents as chunks; 'index' "
    "splits text files and JSON lines unless --no-chunking is given (BEIR folders are "
    "indexed whole: convert one to JSON lines to chunk it)."
)


def token_limit(encoder: Any) -> tuple[Any, int] | None:
    """``(transformers fast tokenizer, max tokens)`` of a sentence-transformers-backed
    encoder; None for encoders that do not say (e.g. a LangChain ``Embeddings``), which
    are not checked.

    Under ONNX the export's tokenizer and limit: the PyTorch model (seconds to load,
    hundreds of MB) is not loaded just to read them.
    """
    own = getattr(encoder, "token_counter", None)
    found = own() if callable(own) else None
    fast = getattr(found[0], "fast_tokenizer", None) if found is not None else None
    if found is not None and callable(fast):
        return fast(), int(found[1])
    model = getattr(encoder, "model", None)
    tokenizer = getattr(model, "tokenizer", None)
    limit = getattr(model, "max_seq_length", None)
    if tokenizer is None or not isinstance(limit, int) or limit <= 0:
        return None
    return tokenizer, limit


def _token_counter(encoder: Any) -> tuple[Any, int] | None:
    """What counts ``encoder``'s tokens for the tally: its own ``token_counter()`` if it has
    one (ONNX-backed encoders: no PyTorch model is loaded for it), else ``token_limit``."""
    own = getattr(encoder, "token_counter", None)
    found = own() if callable(own) else None
    if found is None:
        return token_limit(encoder)
    tokenizer, limit = found
    return tokenizer, int(limit)


def count_too_long(tokenizer: Any, limit: int, texts: Sequence[str]) -> int:
    """How many of ``texts`` have more than ``limit`` tokens, special tokens included.

    Only a head of each long text is tokenized (:func:`token_heads`): enough to tell.
    """
    if not texts:
        return 0
    encoded = tokenizer(
        token_heads(texts, tokenizer, limit),
        add_special_tokens=True,
        truncation=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )
    return sum(len(ids) > limit for ids in encoded["input_ids"])


@dataclass
class TruncationTally:
    """Per indexing call: documents each encoder will cut, reported once at the end."""

    encoders: dict[str, Any]
    """Branch name -> encoder."""
    counts: dict[str, int] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)
    seen: int = 0

    def add(self, texts: Sequence[str]) -> None:
        self.seen += len(texts)
        for branch, encoder in self.encoders.items():
            found = _token_counter(encoder)
            if found is None:
                continue
            tokenizer, limit = found
            self.limits[branch] = limit
            self.counts[branch] = self.counts.get(branch, 0) + count_too_long(
                tokenizer, limit, texts
            )

    def message(self) -> str | None:
        """The warning, or None when no document is cut."""
        cut = {b: n for b, n in self.counts.items() if n}
        if not cut:
            return None
        parts = ", ".join(
            f"{n:,} of {self.seen:,} for the {b} encoder ({self.limits[b]} tokens)"
            for b, n in cut.items()
        )
        return (
            f"Documents longer than an encoder reads were cut by it: {parts}. Text past that "
            f"point cannot be found by that branch. "
            f"{advise(python=SPLITTER_HINT, cli=CLI_SPLITTER_HINT)}"
        )

    def warn(self, *, stacklevel: int = 3) -> None:
        text = self.message()
        if text is not None:
            warnings.warn(text, TruncationWarning, stacklevel=stacklevel)
