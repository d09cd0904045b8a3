"""Encoders on the real bundled models, and model resolution."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from hybrid_retriever import (
    HybridRetriever,
    InvalidParameterError,
    LangChainEmbeddingsEncoder,
    ModelLoadError,
    SentenceTransformerEncoder,
    SparseVector,
    SpladeEncoder,
)
from hybrid_retriever.encoders import precision as precision_module
from hybrid_retriever.encoders import splade
from hybrid_retriever.encoders.backend import EncoderBackend
from hybrid_retriever.encoders.base import LazyModel
from hybrid_retriever.encoders.precision import Precision, as_precision, resolve_dtype
from hybrid_retriever.encoders.splade import masked_lm_split, sparse_rows
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


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_models_load_lazily(backend: str) -> None:
    encoder = SpladeEncoder(backend=backend)
    runtime = encoder._model if backend == "torch" else encoder._onnx
    assert not runtime.loaded
    encoder.encode_query("load me")
    assert runtime.loaded


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


# --- Document encoding: our chunked SPLADE pooling, precision, batching -------------


def realistic_texts() -> list[str]:
    """The demo corpus plus longer and shorter texts: one-word, ~100, ~300 and >512 tokens."""
    from hybrid_retriever.demo import demo_documents

    sentences = [doc.page_content for doc in demo_documents()]
    return [
        *sentences,
        "Yeast.",
        "?",
        " ".join(sentences[:4]),
        " ".join(sentences[4:16]),
        "Ünïcödé: café, naïve, 東京, emoji 🙂 — and a dash.",
        " ".join(sentences + sentences[:8]),  # ~1,000 tokens: truncated at 512
        " ".join(sentences[16:20]),
    ]


def assert_same_vectors(actual: list[SparseVector], expected: list[SparseVector]) -> None:
    assert len(actual) == len(expected)
    for ours, theirs in zip(actual, expected, strict=True):
        assert ours.indices == theirs.indices
        # rel 1e-4, or abs 1e-5 for small weights: a logit is a 128-term dot product of
        # magnitude ~10, so another batch composition (padding changes the attention
        # kernel's summation order) moves it by ~1e-6 absolute, a large relative change
        # for a weight near zero. sentence-transformers disagrees with itself that much:
        # batch_size 32 vs 5 on 48 SciFact documents, up to 3.7e-6 absolute (ours vs
        # it on 200: 4.6e-6); the same index sets in both cases.
        assert ours.values == pytest.approx(theirs.values, rel=1e-4, abs=1e-5)


@pytest.fixture(scope="module")
def reference_vectors(sparse_encoder: SpladeEncoder) -> list[SparseVector]:
    """sentence-transformers' own ``encode_document``, in fp32."""
    # Small batches: sentence-transformers holds [batch, 512, 30522] fp32 logits.
    matrix = sparse_encoder.model.encode_document(
        realistic_texts(), batch_size=4, convert_to_sparse_tensor=True, show_progress_bar=False
    )
    return sparse_rows(matrix, len(realistic_texts()))


def sharing_model(encoder: SpladeEncoder, **options: Any) -> SpladeEncoder:
    """A PyTorch SpladeEncoder with other options on the session's already loaded model."""
    other = SpladeEncoder(backend="torch", **options)
    other._model = encoder._model
    return other


@pytest.mark.parametrize(
    ("batch_size", "precision", "chunk_bytes"),
    [
        (64, "fp32", None),  # one batch: every length padded together
        (5, "fp32", None),  # several batches, and the >512-token one needs two blocks
        (7, "bf16", None),  # bf16 screening, fp32 refinement
        (64, "fp32", 30522 * 4 * 48),  # 48-token blocks: long documents span several
        (64, "bf16", 30522 * 2 * 48),
    ],
)
def test_splade_documents_equal_encode_document(
    sparse_encoder: SpladeEncoder,
    reference_vectors: list[SparseVector],
    monkeypatch: pytest.MonkeyPatch,
    batch_size: int,
    precision: str,
    chunk_bytes: int | None,
) -> None:
    if chunk_bytes is not None:
        monkeypatch.setattr(splade, "LOGITS_CHUNK_BYTES", chunk_bytes)
    encoder = sharing_model(sparse_encoder, batch_size=batch_size, precision=precision)
    assert masked_lm_split(encoder.model) is not None
    monkeypatch.setattr(
        encoder.model, "encode_document", lambda *a, **k: pytest.fail("fallback taken")
    )
    assert_same_vectors(encoder.encode_documents(realistic_texts()), reference_vectors)


def test_splade_input_order_is_kept(sparse_encoder: SpladeEncoder) -> None:
    texts = realistic_texts()[28:]
    forward = sparse_encoder.encode_documents(texts)
    backward = sparse_encoder.encode_documents(texts[::-1])
    assert_same_vectors(backward[::-1], forward)


def test_splade_falls_back_for_other_shapes(
    sparse_encoder: SpladeEncoder, dense_encoder: SentenceTransformerEncoder
) -> None:
    from sentence_transformers import SparseEncoder as SentenceTransformersSparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    plain = sparse_encoder.model
    summed = SentenceTransformersSparseEncoder(
        modules=[plain[0], SpladePooling(pooling_strategy="sum")], device="cpu"
    )
    extra_module = SentenceTransformersSparseEncoder(
        modules=[plain[0], plain[1], SpladePooling()], device="cpu"
    )
    assert masked_lm_split(summed) is None  # SPLADE v1 sum pooling
    assert masked_lm_split(extra_module) is None
    assert masked_lm_split(dense_encoder.model) is None  # BertModel, no MLM head

    encoder = SpladeEncoder(backend="torch")
    encoder._model = LazyModel(lambda: summed)
    calls: list[int] = []
    original = summed.encode_document

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    summed.encode_document = spy  # type: ignore[method-assign]
    texts = ["insulin resistance", "bread and yeast rise"]
    vectors = encoder.encode_documents(texts)
    assert calls == [1]
    expected = sparse_rows(original(texts, convert_to_sparse_tensor=True), len(texts))
    assert_same_vectors(vectors, expected)


def test_splade_honours_max_active_dims(sparse_encoder: SpladeEncoder) -> None:
    model = sparse_encoder.model
    model.max_active_dims = 5
    try:
        vectors = sharing_model(sparse_encoder).encode_documents(realistic_texts()[:6])
        expected = sparse_rows(
            model.encode_document(realistic_texts()[:6], convert_to_sparse_tensor=True), 6
        )
    finally:
        model.max_active_dims = None
    assert all(len(v) == 5 for v in vectors)
    assert_same_vectors(vectors, expected)


#: How far a bf16 document vector may lie from the fp32 one, relative to its norm.
#: bf16 keeps 8 significant bits: unit roundoff u = 2**-8. Under autocast each matrix
#: product rounds its two inputs and its output to bf16 (3 roundings of relative size at
#: most u; the sums run in fp32 on every CPU: AMX, AVX512-BF16, or emulated on AVX2), while
#: layer norms, softmax and residual sums stay fp32. all-MiniLM-L6-v2 has 6 layers of 8
#: products on each token's path (Q, K, V, QK^T, attention x V, output, FFN up, FFN down):
#: 144 roundings. Independent roundings of random sign add in quadrature, and the layer
#: norms keep each layer's gain near 1, so the embedding moves by about sqrt(144) u = 12 u
#: (4.7 %) at the very most; the cosine is then at least 1 - (12 u)**2 / 2 = 0.9989.
#: Measured on this project's AVX512-BF16 CPU: at most 2.6 u over the 43 realistic texts.
BF16_DOCUMENT_TOLERANCE = 12 * 2.0**-8


def test_dense_bf16_is_close_to_fp32(dense_encoder: SentenceTransformerEncoder) -> None:
    texts = realistic_texts()[-7:]
    bf16 = SentenceTransformerEncoder(backend="torch", precision=Precision.BF16)
    fp32 = SentenceTransformerEncoder(backend="torch", precision=Precision.FP32)
    bf16._model = fp32._model = dense_encoder._model
    pairs = list(zip(bf16.encode_documents(texts), fp32.encode_documents(texts), strict=True))
    for ours, full in pairs:
        assert all(isinstance(x, float) for x in ours)
        assert math.dist(ours, full) <= BF16_DOCUMENT_TOLERANCE * math.hypot(*full)
    assert any(ours != full for ours, full in pairs)  # bf16 did run
    assert len(bf16.encode_query("insulin")) == 384


def test_dense_queries_are_fp32_under_auto_and_bf16_only_when_asked(
    dense_encoder: SentenceTransformerEncoder,
) -> None:
    # One short query gains nothing from bf16 (benchmarks/query_vectors.py), and fp32 makes
    # its vector the same on every CPU family but for fp32 rounding.
    auto = SentenceTransformerEncoder(backend="torch", precision=Precision.AUTO)
    fp32 = SentenceTransformerEncoder(backend="torch", precision=Precision.FP32)
    bf16 = SentenceTransformerEncoder(backend="torch", precision=Precision.BF16)
    auto._model = fp32._model = bf16._model = dense_encoder._model
    query = "what causes type 2 diabetes"
    assert auto.encode_query(query) == fp32.encode_query(query)
    assert bf16.encode_query(query) != fp32.encode_query(query)


def test_dense_encodes_the_whole_list_in_one_call(
    dense_encoder: SentenceTransformerEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One call, so that sentence-transformers' own length sorting spans all texts.
    model = dense_encoder.model
    calls: list[int] = []
    original = model.encode_document

    def spy(texts: list[str], **kwargs: Any) -> Any:
        calls.append(len(texts))
        return original(texts, **kwargs)

    monkeypatch.setattr(model, "encode_document", spy)
    # fp32: in bf16 a text's vector depends slightly on the padding of its batch.
    fp32 = SentenceTransformerEncoder(precision=Precision.FP32, backend="torch")
    fp32._model = dense_encoder._model
    texts = realistic_texts()[30:]
    vectors = fp32.encode_documents(texts)
    assert calls == [len(texts)]
    assert fp32.encode_documents([]) == []
    single = fp32.encode_documents([texts[3]])[0]
    assert single == pytest.approx(vectors[3], abs=1e-6)


def test_precision_values() -> None:
    assert as_precision("bf16") is Precision.BF16
    assert as_precision(Precision.AUTO) is Precision.AUTO
    assert Precision.FP32 == "fp32"
    with pytest.raises(InvalidParameterError, match="precision must be one of"):
        SpladeEncoder(precision="fp16")
    with pytest.raises(InvalidParameterError, match="precision must be one of"):
        SentenceTransformerEncoder(precision="half")
    with pytest.raises(TypeError):
        SpladeEncoder("splade-tiny", None, 32, "fp32")  # type: ignore[misc]
    assert SpladeEncoder().precision is Precision.AUTO
    assert SentenceTransformerEncoder().precision is Precision.AUTO


def test_auto_precision_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    cpu = torch.device("cpu")
    assert resolve_dtype(Precision.FP32, cpu) == torch.float32
    assert resolve_dtype(Precision.BF16, cpu) == torch.bfloat16
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    assert resolve_dtype(Precision.AUTO, cpu) == torch.float32
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_dtype(Precision.AUTO, cpu) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_dtype(Precision.AUTO, torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype(Precision.AUTO, torch.device("mps")) == torch.float32


def test_device_passes_through(sparse_encoder: SpladeEncoder) -> None:
    encoder = SpladeEncoder(device="cpu", precision="bf16")
    assert encoder.backend is EncoderBackend.TORCH  # bf16 is PyTorch's
    assert encoder.model.device.type == "cpu"
    assert encoder.dtype.is_floating_point
    assert (
        encoder.encode_documents(["bread rises"])[0]
        == sharing_model(sparse_encoder, precision="fp32").encode_documents(["bread rises"])[0]
    )


def test_batch_size_must_be_positive() -> None:
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InvalidParameterError, match="batch_size"):
            SpladeEncoder(batch_size=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidParameterError, match="batch_size"):
            SentenceTransformerEncoder(batch_size=bad)  # type: ignore[arg-type]


def test_precision_module_does_not_import_torch() -> None:
    code = (
        "import sys, hybrid_retriever.encoders.precision, hybrid_retriever.encoders.splade, "
        "hybrid_retriever.encoders.dense; print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda", "sees no CUDA GPU"),
        ("cuda:0", "sees no CUDA GPU"),
        ("mps", "needs Apple silicon"),
        ("tpu", "Unknown device"),
        ("", "must be a string"),
    ],
)
def test_unavailable_device_is_one_clear_error(device: str, message: str) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(ModelLoadError, match=message):
        SentenceTransformerEncoder(device=device).encode_query("x")
    with pytest.raises(ModelLoadError, match=message):
        SpladeEncoder(device=device).encode_query("x")
