"""Splitting long documents into pieces an encoder reads whole, for ``hybrid-retriever index``.

An encoder reads at most its model's ``max_seq_length`` tokens and drops the rest
(see :mod:`hybrid_retriever.truncation`), so text past that point of a long document
cannot be found. ``index`` therefore splits text files and JSON-lines records longer
than the encoders read into overlapping chunks, sized in tokens of the encoder with the
smallest limit (its own tokenizer), cut at token boundaries of the original text.

Each chunk is a Document of its own: id ``<document id>#<n>`` (n from 0), so rerunning
``index`` rewrites the same points; metadata keeps the document's own, plus where the
chunk comes from (:data:`SOURCE_ID_KEY`, :data:`CHUNK_KEY`, and its character span).
A record without an id gives chunks without one, whose point ids come from their text
and metadata (span included), as any record without an id.
A document that fits is indexed as it is. BEIR folders are indexed whole, as BEIR
scores whole documents.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from langchain_core.documents import Document

from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.metadata_keys import DOC_ID_KEY
from hybrid_retriever.truncation import token_limit

SOURCE_ID_KEY = "source_id"
"""Metadata key of a chunk: the id of the document it was cut from."""
CHUNK_KEY = "chunk"
"""Metadata key of a chunk: its number in the document, from 0."""
SPAN_KEY = "chunk_chars"
"""Metadata key of a chunk: ``[start, end)`` character offsets in the document's text."""
DEFAULT_OVERLAP = 0.125
"""Share of a chunk repeated from the previous one, so a sentence cut in two is whole once."""
WINDOW_CHARS = 1 << 16
"""Characters tokenized at a time: a tokenizer's output for a whole book would take GBs."""


@dataclass(frozen=True)
class Chunker:
    """Token-aware splitting: ``chunk_tokens`` per chunk, ``overlap_tokens`` shared."""

    tokenizer: Any
    """A Hugging Face fast tokenizer (offsets are needed to cut the original text)."""
    chunk_tokens: int
    overlap_tokens: int

    def __post_init__(self) -> None:
        if self.chunk_tokens < 1 or not 0 <= self.overlap_tokens < self.chunk_tokens:
            raise InvalidParameterError(
                f"chunk_tokens={self.chunk_tokens}, overlap_tokens={self.overlap_tokens}: need "
                "chunk_tokens >= 1 and 0 <= overlap_tokens < chunk_tokens."
            )
        if not getattr(self.tokenizer, "is_fast", False):
            raise InvalidParameterError(
                "Chunking needs a fast (Rust) tokenizer, which reports character offsets; "
                "index with --no-chunking, or use a model that ships one."
            )

    @classmethod
    def for_encoders(cls, *encoders: Any, overlap: float = DEFAULT_OVERLAP) -> Chunker | None:
        """Sized for the encoder that reads the fewest tokens (its special tokens left
        out); None when no encoder says what it reads."""
        limits = [found for e in encoders if (found := token_limit(e)) is not None]
        if not limits:
            return None
        tokenizer, limit = min(limits, key=lambda pair: pair[1])
        special = len(tokenizer("", add_special_tokens=True)["input_ids"])
        chunk_tokens = max(limit - special, 1)
        return cls(tokenizer, chunk_tokens, int(chunk_tokens * overlap))

    def split(self, document: Document) -> list[Document]:
        """``document`` itself when it fits, else its chunks in order.

        Chunks start and end between words where the text has them: a chunk cut inside a
        word would be tokenized differently when read alone (``##ments`` becomes
        ``men`` ``##ts``), and could then be longer than the encoder reads.

        The text is tokenized a window at a time (:func:`token_spans`) and only the
        tokens of the chunk being cut are kept, so memory does not grow with its length.
        """
        text = document.page_content
        spans = token_spans(self.tokenizer, text)
        # The tokens from the current chunk's first on; one more than a chunk holds
        # tells whether the text goes on past it.
        ahead = list(itertools.islice(spans, self.chunk_tokens + 1))
        if len(ahead) <= self.chunk_tokens:
            return [document]
        own = document.id if document.id is not None else document.metadata.get(DOC_ID_KEY)
        own_id = None if own is None else str(own)
        chunks = []
        for number in itertools.count():
            size = _word_end(ahead, self.chunk_tokens)
            start, end = ahead[0][0], ahead[size - 1][1]
            # Without an id, the point id comes from the text and metadata (which holds
            # the chunk's number and span), so it is still the same on every run.
            chunk_id = None if own_id is None else f"{own_id}#{number}"
            metadata = {**document.metadata, CHUNK_KEY: number, SPAN_KEY: [start, end]}
            if own_id is not None:
                metadata.update({DOC_ID_KEY: chunk_id, SOURCE_ID_KEY: own_id})
            chunks.append(Document(id=chunk_id, page_content=text[start:end], metadata=metadata))
            if size == len(ahead):  # this chunk ends with the last token
                break
            ahead = ahead[_word_start(ahead, max(size - self.overlap_tokens, 1)) :]
            ahead.extend(itertools.islice(spans, self.chunk_tokens + 1 - len(ahead)))
        return chunks

    def split_all(self, documents: Iterable[Document]) -> Iterator[Document]:
        """Every document, split where it is too long (streamed)."""
        for document in documents:
            yield from self.split(document)


def _word_end(spans: list[tuple[int, int]], limit: int) -> int:
    """How many of ``spans`` (at most ``limit``) to take so that the last one ends a word:
    the next token starts after a gap, or there is none; ``limit`` when no word ends."""
    if len(spans) <= limit:
        return len(spans)
    for size in range(limit, 0, -1):
        if spans[size][0] > spans[size - 1][1]:
            return size
    return limit


def _word_start(spans: list[tuple[int, int]], latest: int) -> int:
    """The last token at or before ``latest`` (from 1) that starts a word; ``latest``
    when none does."""
    for index in range(latest, 0, -1):
        if spans[index][0] > spans[index - 1][1]:
            return index
    return latest


def token_spans(tokenizer: Any, text: str) -> Iterator[tuple[int, int]]:
    """The ``[start, end)`` character span of each token of ``text``, in order.

    Tokenized a window of about :data:`WINDOW_CHARS` characters at a time, each window
    ending at whitespace, where no token is cut (for tokenizers that split words at
    whitespace first); a window with no whitespace runs on to the next one.
    """
    start = 0
    while start < len(text):
        end = len(text)
        if end - start > WINDOW_CHARS:
            limit = start + WINDOW_CHARS
            cut = max(text.rfind(space, start + 1, limit) for space in _SPACES)
            if cut < 0:
                found = [i for space in _SPACES if (i := text.find(space, limit)) >= 0]
                cut = min(found, default=end)
            end = cut
        offsets = tokenizer(
            text[start:end],
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )["offset_mapping"]
        for first, last in offsets:
            yield start + first, start + last
        start = end


_SPACES = (" ", "\n", "\t", "\r")
