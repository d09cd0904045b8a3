"""Shared fixtures: the real bundled models, loaded once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# The models come from the offline packages; never reach for a model hub in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from langchain_core.documents import Document

from hybrid_retriever import HybridRetriever, SentenceTransformerEncoder, SpladeEncoder
from hybrid_retriever.demo import demo_documents


@pytest.fixture(scope="session")
def dense_encoder() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder()


@pytest.fixture(scope="session")
def sparse_encoder() -> SpladeEncoder:
    return SpladeEncoder()


@pytest.fixture(scope="session")
def documents() -> list[Document]:
    return list(demo_documents())


@pytest.fixture()
def make_retriever(
    dense_encoder: SentenceTransformerEncoder, sparse_encoder: SpladeEncoder
) -> Iterator[object]:
    """Build retrievers that share the session's loaded models; closes them afterwards."""
    built: list[HybridRetriever] = []

    def make(**kwargs: object) -> HybridRetriever:
        kwargs.setdefault("dense_encoder", dense_encoder)
        kwargs.setdefault("sparse_encoder", sparse_encoder)
        retriever = HybridRetriever(**kwargs)
        built.append(retriever)
        return retriever

    yield make
    for retriever in built:
        retriever.close()


ENGINES = ("edge", "qdrant-client")


@pytest.fixture(scope="session", params=ENGINES)
def demo_retriever(
    request: pytest.FixtureRequest,
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
    documents: list[Document],
) -> Iterator[HybridRetriever]:
    """A throw-away retriever over the demo corpus on each embedded engine (read-only tests)."""
    retriever = HybridRetriever.from_documents(
        documents,
        collection_name="demo",
        engine=request.param,
        dense_encoder=dense_encoder,
        sparse_encoder=sparse_encoder,
        show_progress=False,
    )
    # qdrant-client's embedded mode scores the first searches after a write slightly
    # differently (~1e-8) from later ones; tests compare later searches with == .
    retriever.invoke("settle")
    retriever.invoke("settle again")
    yield retriever
    retriever.close()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each embedded engine, for tests that write."""
    return str(request.param)
