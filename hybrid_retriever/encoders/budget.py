"""What one encoder call holds in memory, bounded whatever the length of its texts.

A model reads at most ``max_seq_length`` tokens of a text, but a tokenizer reads the
whole text before truncating it: its token list (with offsets, and the cut-off part
kept as "overflow") grows with the text, and so did the encoders' memory and time.
:func:`token_heads` hands the tokenizer only a head of each text that holds every token
the model reads, so they stop growing with length: on 120 SciFact documents concatenated
to 20,000 words (``benchmarks/long_texts.sh``), ``eval``'s peak RSS went from 1.82 to
1.02 GB and ``index --no-chunking``'s from 1.66 to 1.02 GB, with the same metrics.

:func:`batch_size_within` caps the texts per forward pass so that a batch holds at most
:data:`BATCH_TOKEN_BUDGET` tokens: transformer activations grow with batch x tokens,
and a model that reads 8,192 tokens must not get the 32 texts per batch that suit 256.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Tokens per forward pass: 32 texts of 512 tokens, as the default models' batches are at
#: most (so their batch size is unchanged). Activations scale with it, not with text length.
BATCH_TOKEN_BUDGET = 32 * 512

#: First head tried, in characters per token read: English averages 4 to 5 characters
#: per WordPiece token, so nearly every head holds enough tokens at the first try.
_CHARS_PER_TOKEN = 8

#: A head grows by this factor when it holds too few tokens (dense text, long words).
_GROWTH = 4

#: Whitespace a head may end at. A cut there ends no token midway, for tokenizers that
#: split words at whitespace first (WordPiece, byte-level BPE, SentencePiece's Metaspace).
_SPACES = (" ", "\n", "\t", "\r")


def token_heads(texts: Sequence[str], tokenizer: Any, max_tokens: int | None) -> list[str]:
    """Each text, or its shortest head found that still has more than ``max_tokens`` tokens.

    A head ends at whitespace, so its tokens are the text's first tokens: truncated to
    ``max_tokens`` (any special tokens included), it gives the same token ids as the
    whole text does, and it is still over the limit, so the text still counts as cut.
    Texts at most ``8 x max_tokens`` characters long are returned as they are,
    untokenized; so is a long text with no whitespace to cut at.
    """
    heads = list(texts)
    if max_tokens is None or max_tokens <= 0:
        return heads
    window = max_tokens * _CHARS_PER_TOKEN
    pending = [i for i, text in enumerate(heads) if len(text) > window]
    while pending:
        cuts = {i: cut for i in pending if (cut := _head(texts[i], window)) is not None}
        counts = _token_counts(tokenizer, list(cuts.values())) if cuts else []
        enough = {i for i, count in zip(cuts, counts, strict=True) if count > max_tokens}
        for i in enough:
            heads[i] = cuts[i]
        window *= _GROWTH
        pending = [i for i in pending if i not in enough and len(texts[i]) > window]
    return heads


def batch_size_within(batch_size: int, max_tokens: int | None) -> int:
    """``batch_size``, lowered so that a batch of texts at the model's length limit holds
    at most :data:`BATCH_TOKEN_BUDGET` tokens (at least one text)."""
    if max_tokens is None or max_tokens <= 0:
        return batch_size
    return max(1, min(batch_size, BATCH_TOKEN_BUDGET // max_tokens))


def _head(text: str, window: int) -> str | None:
    """``text`` up to the last whitespace in its first ``window`` characters, or None if
    that would keep less than half of the window."""
    end = max(text.rfind(space, 0, window + 1) for space in _SPACES)
    return text[:end] if end > window // 2 else None


def _token_counts(tokenizer: Any, texts: list[str]) -> list[int]:
    encoded = tokenizer(
        texts,
        add_special_tokens=False,
        truncation=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )
    return [len(ids) for ids in encoded["input_ids"]]
