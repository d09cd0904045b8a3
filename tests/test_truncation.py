"""Indexing says how many documents an encoder cuts, instead of cutting them silently."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from hybrid_retriever import HybridRetriever
from hybrid_retriever.truncation import TruncationTally, TruncationWarning, count_too_long

SHORT = "Yeast makes bread dough rise."
# Well past 256 tokens (the default dense model's limit), short of SPLADE's 512.
MEDIUM = " ".join(f"word{i}" for i in range(200))
LONG = " ".join(f"token{i}" for i in range(1000))


def test_count_follows_the_tokenizer_and_its_limit(dense_encoder: Any) -> None:
    tokenizer = dense_encoder.model.tokenizer
    limit = dense_encoder.model.max_seq_length
    assert limit == 256
    exact = len(tokenizer(SHORT)["input_ids"])
    assert count_too_long(tokenizer, exact, [SHORT]) == 0
    assert count_too_long(tokenizer, exact - 1, [SHORT]) == 1
    assert count_too_long(tokenizer, limit, [SHORT, MEDIUM, LONG]) == 2


def test_add_documents_warns_once_with_the_count_and_the_splitter(
    make_retriever: Any,
) -> None:
    retriever: HybridRetriever = make_retriever(collection_name="long")
    with pytest.warns(TruncationWarning) as caught:
        retriever.add_texts(
            [SHORT, LONG, MEDIUM, LONG + " again"], batch_size=2, show_progress=False
        )
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "3 of 4 for the dense encoder (256 tokens)" in message
    assert "for the sparse encoder" in message  # LONG is past SPLADE's limit too
    assert "HybridTextSplitter.for_retriever(retriever)" in message


def test_short_documents_raise_no_warning(make_retriever: Any) -> None:
    retriever: HybridRetriever = make_retriever(collection_name="short")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        retriever.add_texts([SHORT, "Planets orbit stars."], show_progress=False)


def test_encoders_without_a_tokenizer_are_not_checked() -> None:
    tally = TruncationTally({"dense": object()})
    tally.add([LONG])
    assert tally.message() is None
