"""A collection knows the models that wrote it: other models are refused, on both engines.

The "other" models are real: all-MiniLM-L6-v2 and splade-tiny cut to fewer layers (as
``benchmarks/fusion_study.py``'s dense-layers stress), which keep the name, the size and
the vocabulary of the real ones; and a LangChain ``Embeddings`` of the same size.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from hybrid_retriever import (
    CollectionMismatchError,
    DenseEncoder,
    EdgeStorage,
    HybridRetriever,
    SentenceTransformerEncoder,
    SpladeEncoder,
    StorageError,
)
from hybrid_retriever.model_record import PROBE_TEXTS, ModelRecordWarning

MakeRetriever = Callable[..., HybridRetriever]

TEXTS = [
    "Qdrant stores vectors and payloads.",
    "SPLADE expands a query with related terms.",
    "Photosynthesis turns light into sugar.",
    "The Moon landing was in 1969.",
]
QUERIES = ["which database stores vectors?", "how do plants make sugar?"]


@pytest.fixture(scope="module")
def fewer_layers_dense() -> SentenceTransformerEncoder:
    """A different 384-d model with the default's name: MiniLM's first 3 of 6 layers."""
    encoder = SentenceTransformerEncoder(backend="torch", precision="fp32")
    bert: Any = encoder.model[0].auto_model
    bert.encoder.layer = bert.encoder.layer[:3]
    return encoder


@pytest.fixture(scope="module")
def fewer_layers_sparse() -> SpladeEncoder:
    """A different SPLADE model with the default's name and vocabulary: 1 of 2 layers."""
    encoder = SpladeEncoder(backend="torch", precision="fp32")
    masked_lm: Any = encoder.model[0].auto_model
    masked_lm.bert.encoder.layer = masked_lm.bert.encoder.layer[:1]
    return encoder


@pytest.fixture(scope="module")
def torch_fp32_encoders() -> tuple[SentenceTransformerEncoder, SpladeEncoder]:
    """The default models under another runtime than the default int8 ONNX."""
    return (
        SentenceTransformerEncoder(backend="torch", precision="fp32"),
        SpladeEncoder(backend="torch", precision="fp32"),
    )


def build(make_retriever: MakeRetriever, engine: str, path: Path) -> list[str]:
    """The collection, written with the default models; returns its ids. Closed after."""
    retriever = make_retriever(engine=engine, path=str(path), collection_name="notes")
    ids = retriever.add_texts(TEXTS, show_progress=False)
    retriever.close()
    return ids


def reopen(make_retriever: MakeRetriever, engine: str, path: Path, **kwargs: Any) -> Any:
    return make_retriever(engine=engine, path=str(path), collection_name="notes", **kwargs)


def forget_record(retriever: HybridRetriever) -> None:
    """Make the collection look like one written before models were recorded."""
    storage = retriever.storage
    if isinstance(storage, EdgeStorage):
        (storage.root / "notes" / "hybrid_retriever.json").unlink(missing_ok=True)
    else:
        storage.client.update_collection("notes", metadata={"hybrid_retriever": None})  # type: ignore[attr-defined]
    assert storage.read_collection_record("notes") is None


def model_warnings(caught: Iterable[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, ModelRecordWarning)]


@pytest.mark.parametrize("other", ["minilm-3-layers", "langchain-384"])
def test_another_384d_dense_model_is_refused(
    make_retriever: MakeRetriever,
    engine: str,
    tmp_path: Path,
    other: str,
    fewer_layers_dense: SentenceTransformerEncoder,
) -> None:
    build(make_retriever, engine, tmp_path)
    dense = (
        fewer_layers_dense if other == "minilm-3-layers" else DeterministicFakeEmbedding(size=384)
    )
    retriever = reopen(make_retriever, engine, tmp_path, dense_encoder=dense)
    record = retriever.storage.read_collection_record("notes")
    with pytest.raises(CollectionMismatchError) as error:
        retriever.invoke(QUERIES[0])
    message = str(error.value)
    assert "dense vector 'dense' holds vectors of 'all-MiniLM-L6-v2' (onnx-int8)" in message
    assert "sparse" not in message.split("Nothing was changed")[0].replace("'sparse'", "")
    for fix in ("the models the collection was built with", "new collection_name"):
        assert fix in message
    assert "allow_model_mismatch=True" in message
    with pytest.raises(CollectionMismatchError):
        retriever.add_texts(["written by the wrong model"], show_progress=False)
    assert retriever.count() == len(TEXTS)  # nothing written
    assert retriever.storage.read_collection_record("notes") == record  # record untouched


async def test_async_paths_refuse_another_model_too(
    make_retriever: MakeRetriever, engine: str, tmp_path: Path
) -> None:
    build(make_retriever, engine, tmp_path)
    dense = DeterministicFakeEmbedding(size=384)
    retriever = reopen(make_retriever, engine, tmp_path, dense_encoder=dense)
    with pytest.raises(CollectionMismatchError, match="dense vector 'dense'"):
        await retriever.ainvoke(QUERIES[0])
    with pytest.raises(CollectionMismatchError, match="dense vector 'dense'"):
        await retriever.aadd_texts(["written by the wrong model"], show_progress=False)
    assert retriever.count() == len(TEXTS)


def test_another_sparse_model_is_refused(
    make_retriever: MakeRetriever,
    engine: str,
    tmp_path: Path,
    fewer_layers_sparse: SpladeEncoder,
) -> None:
    build(make_retriever, engine, tmp_path)
    retriever = reopen(make_retriever, engine, tmp_path, sparse_encoder=fewer_layers_sparse)
    with pytest.raises(CollectionMismatchError) as error:
        retriever.invoke(QUERIES[0])
    assert "sparse vector 'sparse' holds vectors of 'splade-tiny' (onnx-int8)" in str(error.value)
    assert "dense vector" not in str(error.value)


def test_the_same_models_on_another_runtime_open_without_a_word(
    make_retriever: MakeRetriever,
    engine: str,
    tmp_path: Path,
    torch_fp32_encoders: tuple[SentenceTransformerEncoder, SpladeEncoder],
) -> None:
    """int8 ONNX wrote it; PyTorch fp32 reads it: the same models, vectors within 1 %."""
    ids = build(make_retriever, engine, tmp_path)
    dense, sparse = torch_fp32_encoders
    retriever = reopen(make_retriever, engine, tmp_path, dense_encoder=dense, sparse_encoder=sparse)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelRecordWarning)
        found = retriever.invoke(QUERIES[0], k=1)
        retriever.add_texts(["A fifth note."], show_progress=False)
    assert found[0].id == ids[0]


def test_a_collection_without_a_record_opens_with_one_warning_and_is_recorded_on_write(
    make_retriever: MakeRetriever,
    engine: str,
    tmp_path: Path,
    fewer_layers_dense: SentenceTransformerEncoder,
) -> None:
    build(make_retriever, engine, tmp_path)
    retriever = reopen(make_retriever, engine, tmp_path)
    before = [[d.id for d in retriever.invoke(q)] for q in QUERIES]
    forget_record(retriever)
    retriever.close()

    retriever = reopen(make_retriever, engine, tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        after = [[d.id for d in retriever.invoke(q)] for q in QUERIES]
        retriever.add_texts(["A fifth note."], show_progress=False)  # records; no second word
        retriever.invoke(QUERIES[0])
    assert after == before
    [message] = model_warnings(caught)
    assert (
        "no record of the model that wrote its dense vector 'dense' and sparse vector 'sparse'"
        in (message)
    )
    assert "'all-MiniLM-L6-v2' (onnx-int8)" in message and "'splade-tiny' (onnx-int8)" in message
    assert "The next write" in message
    assert retriever.storage.read_collection_record("notes") is not None
    retriever.close()

    other = reopen(make_retriever, engine, tmp_path, dense_encoder=fewer_layers_dense)
    with pytest.raises(CollectionMismatchError):
        other.invoke(QUERIES[0])


def test_a_first_write_to_an_unrecorded_collection_says_it_recorded_the_models(
    make_retriever: MakeRetriever, engine: str, tmp_path: Path
) -> None:
    build(make_retriever, engine, tmp_path)
    retriever = reopen(make_retriever, engine, tmp_path)
    forget_record(retriever)
    with pytest.warns(ModelRecordWarning, match="Recorded these models now") as caught:
        retriever.add_texts(["A fifth note."], show_progress=False)
        retriever.add_texts(["A sixth note."], show_progress=False)
    assert len(model_warnings(caught)) == 1
    assert retriever.storage.read_collection_record("notes") is not None


def test_allow_model_mismatch_opens_and_writes_with_a_warning(
    make_retriever: MakeRetriever,
    engine: str,
    tmp_path: Path,
    fewer_layers_dense: SentenceTransformerEncoder,
) -> None:
    ids = build(make_retriever, engine, tmp_path)
    retriever = reopen(
        make_retriever,
        engine,
        tmp_path,
        dense_encoder=fewer_layers_dense,
        allow_model_mismatch=True,
    )
    record = retriever.storage.read_collection_record("notes")
    with pytest.warns(ModelRecordWarning, match="allow_model_mismatch=True") as caught:
        found = retriever.invoke(QUERIES[0])
        retriever.add_texts(["A fifth note."], show_progress=False)
    assert "holds vectors of 'all-MiniLM-L6-v2' (onnx-int8)" in model_warnings(caught)[0]
    assert {d.id for d in found} <= set(ids)
    assert retriever.count() == len(TEXTS) + 1
    # The record still names the models that built the collection.
    assert retriever.storage.read_collection_record("notes") == record


class CountingDense(DenseEncoder):
    """The real dense encoder, listing the texts it encodes as queries (probes included)."""

    def __init__(self, inner: SentenceTransformerEncoder) -> None:
        self.inner = inner
        self.queries: list[str] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def encode_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self.inner.encode_documents(texts)

    def encode_query(self, text: str) -> list[float]:
        self.queries.append(text)
        return self.inner.encode_query(text)


def test_the_check_costs_one_probe_pass_per_encoder_not_per_query(
    make_retriever: MakeRetriever,
    dense_encoder: SentenceTransformerEncoder,
    tmp_path: Path,
) -> None:
    build(make_retriever, "edge", tmp_path)
    counting = CountingDense(dense_encoder)
    first = reopen(make_retriever, "edge", tmp_path, dense_encoder=counting, query_cache_size=0)
    for query in QUERIES * 3:
        first.invoke(query)
    first.close()
    second = reopen(make_retriever, "edge", tmp_path, dense_encoder=counting)
    second.invoke(QUERIES[0])  # a second retriever on the same encoder: probes cached
    probes = [text for text in counting.queries if text in PROBE_TEXTS]
    assert probes == list(PROBE_TEXTS)  # once, before the first query
    assert counting.queries[: len(PROBE_TEXTS)] == list(PROBE_TEXTS)
    assert len(counting.queries) > len(PROBE_TEXTS) + 1  # the queries did reach it


def test_an_unreadable_record_is_a_storage_error_naming_the_file(
    make_retriever: MakeRetriever, tmp_path: Path
) -> None:
    build(make_retriever, "edge", tmp_path)
    record = tmp_path / "notes" / "hybrid_retriever.json"
    record.write_text("{not json", encoding="utf-8")
    retriever = reopen(make_retriever, "edge", tmp_path)
    with pytest.raises(StorageError, match=r"hybrid_retriever\.json is not valid JSON.*Delete it"):
        retriever.invoke(QUERIES[0])


class RecordRefusingEdge(EdgeStorage):
    """Real Edge storage whose record writes fail, as on a server too old for metadata."""

    def write_collection_record(self, collection: str, record: Any) -> None:
        raise StorageError("the engine refused the collection metadata.")


def test_a_record_that_cannot_be_written_costs_the_check_not_the_write(
    make_retriever: MakeRetriever, tmp_path: Path
) -> None:
    retriever = make_retriever(storage=RecordRefusingEdge(tmp_path), collection_name="notes")
    with pytest.warns(ModelRecordWarning, match="Could not record the models") as caught:
        ids = retriever.add_texts(TEXTS, show_progress=False)
    assert "the engine refused the collection metadata" in model_warnings(caught)[0]
    assert retriever.count() == len(TEXTS)
    assert retriever.invoke(QUERIES[0], k=1)[0].id == ids[0]


QDRANT_URL = os.environ.get("QDRANT_URL")


@pytest.mark.skipif(not QDRANT_URL, reason="no Qdrant server: set QDRANT_URL")
def test_a_server_collection_keeps_its_record_in_the_collection_metadata(
    make_retriever: MakeRetriever,
) -> None:
    name = f"model-record-{uuid.uuid4().hex[:8]}"
    server = {"url": QDRANT_URL, "api_key": os.environ.get("QDRANT_API_KEY")}
    writer = make_retriever(collection_name=name, **server)
    try:
        writer.add_texts(TEXTS, show_progress=False)
        assert writer.storage.read_collection_record(name) is not None
        reader = make_retriever(
            collection_name=name, dense_encoder=DeterministicFakeEmbedding(size=384), **server
        )
        with pytest.raises(CollectionMismatchError, match="dense vector 'dense'"):
            reader.invoke(QUERIES[0])
    finally:
        writer.storage.client.delete_collection(name)  # type: ignore[attr-defined]
