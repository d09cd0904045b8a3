"""The token-aware chunker as a LangChain ``TextSplitter``, for your own files in Python.

``hybrid-retriever index`` splits long text files and JSON lines with
:class:`~hybrid_retriever.chunking.Chunker`; :class:`HybridTextSplitter` is the same
splitter for Python code, so that it composes with LangChain's document loaders::

    docs = TextLoader("notes.md").load()
    chunks = HybridTextSplitter().split_documents(docs)
    retriever.add_documents(chunks)

Chunks are sized in tokens of the encoder that reads the fewest (its own tokenizer), so
that each chunk is read whole; nothing loads a PyTorch model to learn the size
(:func:`~hybrid_retriever.truncation.token_limit`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_text_splitters import TextSplitter

from hybrid_retriever.chunking import DEFAULT_OVERLAP, Chunker, token_spans
from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.truncation import token_limit


class HybridTextSplitter(TextSplitter):
    """Split texts into chunks the retriever's encoders read whole.

    ``HybridTextSplitter()`` sizes chunks to what the default encoders read (the smaller
    of the two models' limits, special tokens left out); ``chunk_tokens=`` asks for
    smaller chunks and ``overlap=`` sets the tokens consecutive chunks share (default:
    an eighth of a chunk). :meth:`for_retriever` matches a retriever's own encoders.

    ``split_documents`` keeps each document's metadata and id; a document that fits is
    returned as it is, a longer one as chunks whose metadata adds ``chunk`` (its number,
    from 0) and ``chunk_chars`` (its ``[start, end)`` character span), and, when the
    document has an id, ``source_id`` (that id) and ``doc_id`` / ``Document.id``
    ``<id>#<n>``, as ``hybrid-retriever index`` writes them.
    """

    def __init__(
        self,
        *,
        chunk_tokens: int | None = None,
        overlap: int | None = None,
        encoders: Sequence[Any] | None = None,
    ) -> None:
        if encoders is None:
            from hybrid_retriever.encoders.dense import SentenceTransformerEncoder
            from hybrid_retriever.encoders.splade import SpladeEncoder

            encoders = (SentenceTransformerEncoder(), SpladeEncoder())
        limits = [found for encoder in encoders if (found := token_limit(encoder)) is not None]
        if not limits:
            raise InvalidParameterError(
                "None of the encoders says how many tokens it reads (e.g. LangChain "
                "Embeddings): pass encoders= with a sentence-transformers model, or split "
                "with another TextSplitter."
            )
        tokenizer, limit = min(limits, key=lambda pair: pair[1])
        special = len(tokenizer("", add_special_tokens=True)["input_ids"])
        readable = max(limit - special, 1)
        if chunk_tokens is None:
            chunk_tokens = readable
        elif isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, int):
            raise InvalidParameterError(f"chunk_tokens must be an integer, got {chunk_tokens!r}.")
        elif chunk_tokens > readable:
            raise InvalidParameterError(
                f"chunk_tokens={chunk_tokens} is more than the encoders read ({readable} "
                "tokens): the rest of each chunk would be cut. Pass at most that, or leave "
                "chunk_tokens unset."
            )
        if overlap is None:
            overlap = int(chunk_tokens * DEFAULT_OVERLAP)
        elif isinstance(overlap, bool) or not isinstance(overlap, int):
            raise InvalidParameterError(f"overlap must be an integer (tokens), got {overlap!r}.")
        self._chunker = Chunker(tokenizer, chunk_tokens, overlap)  # checks the two sizes
        super().__init__(
            chunk_size=chunk_tokens, chunk_overlap=overlap, length_function=self._tokens
        )

    @classmethod
    def for_retriever(
        cls, retriever: Any, *, chunk_tokens: int | None = None, overlap: int | None = None
    ) -> HybridTextSplitter:
        """Sized for ``retriever``'s encoders (a ``HybridRetriever`` or ``HybridVectorStore``)."""
        retriever = getattr(retriever, "retriever", retriever)  # a HybridVectorStore's
        return cls(
            chunk_tokens=chunk_tokens,
            overlap=overlap,
            encoders=(retriever.dense_encoder, retriever.sparse_encoder),
        )

    @property
    def chunk_tokens(self) -> int:
        """Tokens per chunk at most."""
        return self._chunker.chunk_tokens

    @property
    def overlap(self) -> int:
        """Tokens a chunk shares with the previous one."""
        return self._chunker.overlap_tokens

    def _tokens(self, text: str) -> int:
        return sum(1 for _ in token_spans(self._chunker.tokenizer, text))

    def split_text(self, text: str) -> list[str]:
        """The chunks of ``text`` (``[text]`` when it fits)."""
        return [chunk.page_content for chunk in self._chunker.split(Document(page_content=text))]

    def create_documents(
        self, texts: list[str], metadatas: list[dict[Any, Any]] | None = None
    ) -> list[Document]:
        """One Document per chunk of each text, with a copy of that text's metadata."""
        metadatas = metadatas or [{}] * len(texts)
        return self.split_documents(
            Document(page_content=text, metadata=copy.deepcopy(metadata))
            for text, metadata in zip(texts, metadatas, strict=True)
        )

    def split_documents(self, documents: Iterable[Document]) -> list[Document]:
        """Each document, or its chunks when it is longer than the encoders read."""
        return [
            Document(id=piece.id, page_content=piece.page_content, metadata=dict(piece.metadata))
            for document in documents
            for piece in self._chunker.split(document)
        ]
