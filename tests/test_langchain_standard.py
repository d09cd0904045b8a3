"""LangChain's own standard test-suite for retrievers, on a real in-memory collection."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests
from qdrant_client import QdrantClient

from hybrid_retriever import HybridRetriever, SentenceTransformerEncoder, SpladeEncoder
from hybrid_retriever.demo import demo_documents


@pytest.fixture(scope="module")
def shared_client() -> QdrantClient:
    client = QdrantClient(":memory:")
    HybridRetriever.from_documents(
        demo_documents(),
        collection_name="standard",
        client=client,
        dense_encoder=_ENCODERS["dense"],
        sparse_encoder=_ENCODERS["sparse"],
        show_progress=False,
    )
    return client


_ENCODERS: dict[str, Any] = {"dense": SentenceTransformerEncoder(), "sparse": SpladeEncoder()}


class TestHybridRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _client(self, shared_client: QdrantClient) -> None:
        self._shared_client = shared_client

    @property
    def retriever_constructor(self) -> type[HybridRetriever]:
        return HybridRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {
            "collection_name": "standard",
            "client": self._shared_client,
            "dense_encoder": _ENCODERS["dense"],
            "sparse_encoder": _ENCODERS["sparse"],
        }

    @property
    def retriever_query_example(self) -> str:
        return "why does bread dough rise?"
