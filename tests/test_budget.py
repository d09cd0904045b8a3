"""Encoders hold bounded memory whatever the text length, and their vectors do not change."""

from __future__ import annotations

from typing import Any

import pytest

from hybrid_retriever import SentenceTransformerEncoder, SpladeEncoder
from hybrid_retriever.encoders import splade
from hybrid_retriever.encoders.base import LazyModel
from hybrid_retriever.encoders.budget import (
    BATCH_TOKEN_BUDGET,
    batch_size_within,
    token_heads,
)
from hybrid_retriever.encoders.precision import Precision
from hybrid_retriever.encoders.splade import sparse_rows
from hybrid_retriever.truncation import count_too_long
from hybrid_retriever.vectors import SparseVector


def long_texts() -> list[str]:
    """Texts far past any model's limit, each with its own start, and shorter ones."""
    from hybrid_retriever.demo import demo_documents

    sentences = [doc.page_content for doc in demo_documents()]
    body = " ".join(sentences)  # ~700 tokens
    return [
        "Yeast.",
        " ".join(sentences[:4]),
        " ".join(sentences[4:16]),
        "Ünïcödé: café, naïve, 東京, emoji 🙂 — and a dash.",
        body,
        "Insulin resistance first. " + " ".join([body] * 30),  # ~20,000 tokens
        "Yeast and bread first.\n" + " ".join([body] * 3),
        "x" * 5000 + " " + body,  # no whitespace early: the head grows past the word
    ]


def assert_same_vectors(actual: list[SparseVector], expected: list[SparseVector]) -> None:
    """Same terms, same weights but for rounding (as in test_encoders.py)."""
    assert len(actual) == len(expected)
    for ours, theirs in zip(actual, expected, strict=True):
        assert ours.indices == theirs.indices
        assert ours.values == pytest.approx(theirs.values, rel=1e-4, abs=1e-5)


class CharTokenizer:
    """One token per character, recording what it was asked to read (pure logic)."""

    def __init__(self) -> None:
        self.read: list[int] = []

    def __call__(self, texts: list[str], **_: Any) -> dict[str, list[list[int]]]:
        self.read.extend(len(t) for t in texts)
        return {"input_ids": [[ord(c) for c in t] for t in texts]}


def test_heads_read_a_bounded_share_of_a_long_text() -> None:
    tokenizer = CharTokenizer()
    text = "word " * 200_000  # a million characters
    (head,) = token_heads([text], tokenizer, 100)
    assert text.startswith(head) and 100 < len(head) <= 800
    assert max(tokenizer.read) <= 800  # never the whole text
    assert token_heads(["short text"], tokenizer, 100) == ["short text"]
    assert token_heads([text], tokenizer, None) == [text]
    assert token_heads(["x" * 10_000], tokenizer, 100) == ["x" * 10_000]  # nowhere to cut


@pytest.mark.parametrize("branch", ["dense", "sparse"])
def test_heads_give_the_tokens_the_model_reads(
    branch: str, dense_encoder: SentenceTransformerEncoder, sparse_encoder: SpladeEncoder
) -> None:
    model = (dense_encoder if branch == "dense" else sparse_encoder).model
    tokenizer, limit = model.tokenizer, model.max_seq_length
    texts = long_texts()
    heads = token_heads(texts, tokenizer, limit)
    assert len(heads[5]) < len(texts[5]) // 10 and len(heads[6]) < len(texts[6])
    assert heads[:4] == texts[:4]  # short texts go as they are
    read = {"truncation": True, "max_length": limit}
    assert tokenizer(heads, **read)["input_ids"] == tokenizer(texts, **read)["input_ids"]
    whole = [len(ids) > limit for ids in tokenizer(texts)["input_ids"]]
    assert count_too_long(tokenizer, limit, texts) == sum(whole)


def test_dense_vectors_of_long_texts_are_unchanged(
    dense_encoder: SentenceTransformerEncoder,
) -> None:
    fp32 = SentenceTransformerEncoder(precision=Precision.FP32, backend="torch")
    fp32._model = dense_encoder._model
    texts = long_texts()
    whole = fp32.model.encode_document(texts, batch_size=32, show_progress_bar=False)
    for ours, theirs in zip(fp32.encode_documents(texts), whole.tolist(), strict=True):
        # Another padding of the batch moves fp32 vectors by rounding only.
        assert ours == pytest.approx(theirs, abs=1e-5)
    query = texts[-3]
    expected = fp32.model.encode_query([query], batch_size=1, show_progress_bar=False)[0]
    assert fp32.encode_query(query) == pytest.approx(expected.tolist(), abs=1e-6)


def test_splade_vectors_of_long_texts_are_unchanged(sparse_encoder: SpladeEncoder) -> None:
    texts = long_texts()
    torch_encoder = SpladeEncoder(backend="torch")
    torch_encoder._model = sparse_encoder._model
    model = torch_encoder.model
    whole = model.encode_document(
        texts, batch_size=4, convert_to_sparse_tensor=True, show_progress_bar=False
    )
    assert_same_vectors(torch_encoder.encode_documents(texts), sparse_rows(whole, len(texts)))
    query = texts[-3]
    expected = model.encode_query([query], convert_to_sparse_tensor=True)
    assert_same_vectors([torch_encoder.encode_query(query)], sparse_rows(expected, 1))


def test_batches_stay_within_the_token_budget() -> None:
    assert batch_size_within(32, 256) == 32  # the default models keep their batch size
    assert batch_size_within(32, 512) == 32
    assert batch_size_within(32, 8192) == BATCH_TOKEN_BUDGET // 8192
    assert batch_size_within(32, 10**6) == 1
    assert batch_size_within(7, None) == 7


def test_splade_fallback_batches_bound_the_logits(sparse_encoder: SpladeEncoder) -> None:
    from sentence_transformers import SparseEncoder as SentenceTransformersSparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    plain = sparse_encoder.model
    summed = SentenceTransformersSparseEncoder(
        modules=[plain[0], SpladePooling(pooling_strategy="sum")], device="cpu"
    )
    batch_sizes: list[int] = []
    original = summed.encode_document

    def spy(*args: Any, **kwargs: Any) -> Any:
        batch_sizes.append(kwargs["batch_size"])
        return original(*args, **kwargs)

    summed.encode_document = spy  # type: ignore[method-assign]
    encoder = SpladeEncoder(batch_size=32, backend="torch")
    encoder._model = LazyModel(lambda: summed)
    encoder.encode_documents(["insulin resistance", "bread and yeast rise"])
    per_text = summed.max_seq_length * len(summed.tokenizer) * 4
    (batch_size,) = batch_sizes
    assert batch_size * per_text <= splade.FALLBACK_LOGITS_BYTES < 32 * per_text


def test_chunking_tokenizes_a_window_at_a_time_and_cuts_the_same_chunks(
    dense_encoder: SentenceTransformerEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_core.documents import Document

    from hybrid_retriever import chunking

    chunker = chunking.Chunker.for_encoders(dense_encoder)
    assert chunker is not None
    text = " ".join(long_texts()[4:7]) + " " + "x" * 700 + " end.\n"
    document = Document(id="long", page_content=text, metadata={"doc_id": "long"})
    at_once = chunker.split(document)
    whole = chunker.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    monkeypatch.setattr(chunking, "WINDOW_CHARS", 300)
    seen: list[int] = []
    tokenize = chunker.tokenizer.__class__.__call__

    def spy(self: Any, text: str, **kwargs: Any) -> Any:
        seen.append(len(text))
        return tokenize(self, text, **kwargs)

    monkeypatch.setattr(chunker.tokenizer.__class__, "__call__", spy)
    spans = list(chunking.token_spans(chunker.tokenizer, text))
    assert spans == [tuple(span) for span in whole["offset_mapping"]]
    assert max(seen) < 1000 < len(text) / 10  # windows, the one without whitespace too
    assert chunker.split(document) == at_once
    assert len(at_once) > 10
