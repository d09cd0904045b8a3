"""Long documents are split into chunks the encoders read whole, so their end is findable."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from langchain_core.documents import Document

from hybrid_retriever import HybridRetriever
from hybrid_retriever.chunking import CHUNK_KEY, SOURCE_ID_KEY, SPAN_KEY, Chunker
from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.sources import DOC_ID_KEY
from hybrid_retriever.truncation import token_limit

FILLER = " ".join(
    f"Paragraph {i}: the bakery opens at dawn, flour is weighed, dough is kneaded and left "
    "to rise before the loaves go into the oven."
    for i in range(60)
)
FACT = "The lighthouse keeper's cat, Biscuit, rang the fog bell every evening at nine."
LONG = Document(id="long.md", page_content=f"{FILLER} {FACT}", metadata={DOC_ID_KEY: "long.md"})
QUERY = "which cat rang the lighthouse fog bell"


@pytest.fixture(scope="module")
def chunker(dense_encoder: Any, sparse_encoder: Any) -> Chunker:
    found = Chunker.for_encoders(dense_encoder, sparse_encoder)
    assert found is not None
    return found


def test_chunks_are_sized_for_the_encoder_that_reads_least(
    chunker: Chunker, dense_encoder: Any
) -> None:
    assert chunker.tokenizer is token_limit(dense_encoder)[0]  # the export's, under ONNX
    assert chunker.chunk_tokens == 256 - 2  # [CLS] and [SEP]
    assert 0 < chunker.overlap_tokens < chunker.chunk_tokens


def test_a_long_document_becomes_overlapping_chunks_that_cover_it(chunker: Chunker) -> None:
    chunks = chunker.split(LONG)
    text = LONG.page_content
    assert len(chunks) > 3
    assert [c.id for c in chunks] == [f"long.md#{n}" for n in range(len(chunks))]
    spans = [c.metadata[SPAN_KEY] for c in chunks]
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (start, end), (next_start, _) in itertools.pairwise(spans):
        assert start < next_start < end  # each chunk starts inside the previous one
    for number, chunk in enumerate(chunks):
        start, end = chunk.metadata[SPAN_KEY]
        assert chunk.page_content == text[start:end]
        assert chunk.metadata[SOURCE_ID_KEY] == "long.md"
        assert chunk.metadata[CHUNK_KEY] == number
        assert chunk.metadata[DOC_ID_KEY] == chunk.id
        assert len(chunker.tokenizer(chunk.page_content)["input_ids"]) <= 256
    assert FACT in chunks[-1].page_content


def test_a_document_that_fits_is_left_whole_and_bad_sizes_are_refused(chunker: Chunker) -> None:
    short = Document(id="s", page_content="Yeast makes dough rise.")
    assert chunker.split(short) == [short]
    anonymous = chunker.split(Document(page_content=LONG.page_content))
    assert all(c.id is None and SOURCE_ID_KEY not in c.metadata for c in anonymous)
    assert len({tuple(c.metadata[SPAN_KEY]) for c in anonymous}) == len(anonymous)
    with pytest.raises(InvalidParameterError, match="overlap_tokens"):
        Chunker(chunker.tokenizer, 10, 10)


def test_text_past_the_first_256_tokens_is_found_only_when_chunked(
    make_retriever: Any, chunker: Chunker
) -> None:
    others = [
        Document(id=f"d{i}", page_content=text, metadata={DOC_ID_KEY: f"d{i}"})
        for i, text in enumerate(
            [
                "Planets orbit stars along elliptical paths.",
                "Insulin resistance develops with inactivity.",
                "Adults need seven to nine hours of sleep.",
            ]
        )
    ]
    # The models' branches only: BM25 reads a whole text, cut or not.
    chunked: HybridRetriever = make_retriever(collection_name="chunked", bm25_encoder=False)
    chunked.add_documents(chunker.split_all([LONG, *others]), show_progress=False)
    whole: HybridRetriever = make_retriever(collection_name="whole", bm25_encoder=False)
    with pytest.warns(UserWarning, match="cut by it"):
        whole.add_documents([LONG, *others], show_progress=False)

    last = f"long.md#{len(chunker.split(LONG)) - 1}"
    for weights in ({"dense": 1.0, "sparse": 0.0}, {"dense": 0.0, "sparse": 1.0}, None):
        top = chunked.invoke(QUERY, k=3, weights=weights)[0]
        assert top.id is not None and top.metadata[DOC_ID_KEY] == last, weights
        assert FACT in top.page_content
    # Whole, both encoders read only the beginning (bakery filler): SPLADE gives the
    # document no weight on any query term, so the sparse branch does not return it.
    sparse_only = whole.invoke(QUERY, k=10, weights={"dense": 0.0, "sparse": 1.0})
    assert "long.md" not in [d.metadata[DOC_ID_KEY] for d in sparse_only]
