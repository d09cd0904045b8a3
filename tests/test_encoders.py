"""Encoders on the real bundled models, and model resolution."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from hybrid_retriever import (
    HybridRetriever,
    LangChainEmbeddingsEncoder,
    ModelLoadError,
    SentenceTransformerEncoder,
    SpladeEncoder,
)
from hybrid_retriever.model_catalog import CATALOG, resolve_model


def test_short_names_resolve_to_installed_offline_packages() -> None:
    for name, entry in CATALOG.items():
        resolved = Path(resolve_model(name))
        assert resolved.name == entry.offline_subdir
        assert (resolved / "config.json").is_file()


def test_short_names_fall_back_to_the_hub_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert resolve_model("splade-tiny") == "rasyosef/splade-tiny"
    assert resolve_model("all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"


def test_other_names_pass_through() -> None:
    assert resolve_model("./my-model") == "./my-model"
    assert resolve_model("org/model") == "org/model"


def test_models_load_lazily() -> None:
    encoder = SpladeEncoder()
    assert not encoder._model.loaded
    encoder.encode_query("load me")
    assert encoder._model.loaded


def test_splade_vectors(sparse_encoder: SpladeEncoder) -> None:
    query = sparse_encoder.encode_query("what causes diabetes")
    assert len(query) > 0
    assert all(v > 0 for v in query.values)
    assert query.indices == sorted(set(query.indices))
    top_tokens = [token for token, _ in sparse_encoder.decode(query, top_k=5)]
    assert "diabetes" in top_tokens
    docs = sparse_encoder.encode_documents(["insulin resistance", "bread and yeast"])
    assert len(docs) == 2 and all(len(d) > 0 for d in docs)
    assert sparse_encoder.encode_documents([]) == []


def test_splade_batch_equals_single(sparse_encoder: SpladeEncoder) -> None:
    texts = ["a short text", "a somewhat longer text about neutron stars and gravity"]
    batch = sparse_encoder.encode_documents(texts)
    for text, vector in zip(texts, batch, strict=True):
        single = sparse_encoder.encode_documents([text])[0]
        assert single.indices == vector.indices
        assert single.values == pytest.approx(vector.values, rel=1e-4, abs=1e-5)


def test_dense_vectors(dense_encoder: SentenceTransformerEncoder) -> None:
    assert dense_encoder.dimension == 384
    vectors = dense_encoder.encode_documents(["one", "two"])
    assert [len(v) for v in vectors] == [384, 384]
    assert len(dense_encoder.encode_query("three")) == 384


def test_missing_model_path() -> None:
    with pytest.raises(ModelLoadError, match="Could not load the sparse model '/no/such/model'"):
        SpladeEncoder("/no/such/model").encode_query("x")
    with pytest.raises(ModelLoadError, match="Could not load the dense model"):
        SentenceTransformerEncoder("/no/such/model").encode_query("x")


def test_splade_refuses_a_model_without_mlm_head() -> None:
    with pytest.raises(ModelLoadError, match="not a masked-language model"):
        SpladeEncoder("all-MiniLM-L6-v2").encode_query("x")


def test_any_langchain_embeddings_as_dense_branch(sparse_encoder: SpladeEncoder) -> None:
    embeddings = DeterministicFakeEmbedding(size=16)
    retriever = HybridRetriever.from_texts(
        ["neutron stars are dense", "bread rises with yeast"],
        dense_encoder=embeddings,
        sparse_encoder=sparse_encoder,
        show_progress=False,
    )
    assert isinstance(retriever.dense_encoder, LangChainEmbeddingsEncoder)
    assert retriever.dense_encoder.dimension == 16
    docs = retriever.invoke("yeast", k=2)
    assert docs[0].page_content == "bread rises with yeast"
    assert docs[0].metadata["_ranks"]["sparse"] == 1
