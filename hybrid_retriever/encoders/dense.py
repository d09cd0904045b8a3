"""Dense encoders: a sentence-transformers model, or any LangChain ``Embeddings``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings

from hybrid_retriever.encoders.backend import (
    EncoderBackend,
    as_backend,
    resolve_backend,
    runtime_label,
)
from hybrid_retriever.encoders.base import DenseEncoder, LazyModel
from hybrid_retriever.encoders.budget import batch_size_within, token_heads
from hybrid_retriever.encoders.loading import load_sentence_transformers_model
from hybrid_retriever.encoders.onnx_model import OnnxModel, OnnxSlot
from hybrid_retriever.encoders.precision import (
    Precision,
    as_precision,
    inference_context,
    resolve_dtype,
)
from hybrid_retriever.encoders.threads import QUERY_TORCH_THREADS, torch_threads_set_to
from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.model_catalog import DEFAULT_DENSE_MODEL

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer


#: AUTO: bf16 where the device multiplies it natively. Measured on SciFact with
#: all-MiniLM-L6-v2 (benchmarks/precision_quality.py, AVX512-BF16 CPU): nDCG@10 0.6498
#: against 0.6492 in fp32, top-10 overlap 0.993, hybrid unchanged (0.7191), for 1.8x
#: the documents per second (benchmarks/encoding.py: 42.3 against 23.0).
DEFAULT_DENSE_PRECISION = Precision.AUTO


class SentenceTransformerEncoder(DenseEncoder):
    """A ``sentence_transformers.SentenceTransformer`` model, loaded on first use.

    ``model`` is a short name from :mod:`hybrid_retriever.model_catalog`, a hub
    id or a local directory. ``batch_size`` is the number of documents per forward
    pass; queries are encoded one per pass (:meth:`encode_query`). ``precision``
    (keyword-only, default ``Precision.AUTO``: bf16 where the device has native
    support, else fp32; or ``FP32``, ``BF16``) applies to documents, and to queries
    only when ``BF16``; bf16 runs the model under ``torch.autocast`` (see
    :func:`~hybrid_retriever.encoders.precision.inference_context`) and changes the
    vectors slightly.

    ``backend`` (keyword-only, default ``EncoderBackend.AUTO``): ONNX Runtime in int8
    where ``onnxruntime`` is installed, the device is the CPU and bf16 was not asked
    for (in fp32 if ``precision="fp32"`` was), else PyTorch (see
    :mod:`~hybrid_retriever.encoders.backend`); ``"onnx"`` for ONNX Runtime in fp32.
    The ONNX export is made once and cached in ``onnx_cache_dir`` (default:
    ``$HYBRID_RETRIEVER_ONNX_CACHE`` or the user's cache folder;
    :mod:`~hybrid_retriever.encoders.onnx_export`). Under ONNX ``precision`` only
    chooses between int8 and fp32.
    """

    def __init__(
        self,
        model: str = DEFAULT_DENSE_MODEL,
        *,
        device: str | None = None,
        batch_size: int = 32,
        precision: Precision | str = DEFAULT_DENSE_PRECISION,
        backend: EncoderBackend | str = EncoderBackend.AUTO,
        onnx_cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidParameterError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
        self._model_name = model
        self._device = device
        self._batch_size = batch_size
        self._precision = as_precision(precision)
        self._requested_backend = as_backend(backend)
        self._backend = resolve_backend(
            self._requested_backend, device=device, precision=self._precision
        )
        self._model: LazyModel[SentenceTransformer] = LazyModel(self._load)
        self._onnx = OnnxSlot(
            model,
            kind="dense",
            backend=self._backend,
            requested=self._requested_backend,
            cache_dir=onnx_cache_dir,
            unsupported="a BERT model with mean pooling",
        )

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder(model={self._model_name!r})"

    def _load(self) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer

        return load_sentence_transformers_model(
            SentenceTransformer, self._model_name, kind="dense", device=self._device
        )

    def _onnx_model(self) -> OnnxModel | None:
        return self._onnx.model()

    def token_counter(self) -> tuple[Any, int] | None:
        """See :meth:`OnnxSlot.token_counter`."""
        return self._onnx.token_counter()

    @property
    def backend(self) -> EncoderBackend:
        """The runtime that encodes (TORCH or ONNX*; exports the model on first use)."""
        return self._onnx.backend

    @property
    def name(self) -> str:
        return self._model_name

    @property
    def runtime(self) -> str:
        """The backend, with the dtype under PyTorch: e.g. ``"onnx-int8"``, ``"torch-float32"``."""
        return runtime_label(self.backend, lambda: self.dtype)

    @property
    def model(self) -> SentenceTransformer:
        """The underlying model (loads it if needed)."""
        return self._model.get()

    @property
    def precision(self) -> Precision:
        """The precision asked for; ``dtype`` says what it means on the model's device."""
        return self._precision

    @property
    def dtype(self) -> torch.dtype:
        """The dtype inference runs in (loads the model to know its device)."""
        if self._onnx_model() is not None:
            import torch

            return torch.float32
        return resolve_dtype(self._precision, self.model.device)

    @property
    def dimension(self) -> int:
        onnx = self._onnx_model()
        if onnx is not None:
            return int(onnx.spec["dimension"])
        model = self.model
        # sentence-transformers renamed the method in v6; accept both.
        get_dimension = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        dimension = get_dimension()
        if dimension is None:  # pragma: no cover - only for exotic custom modules
            return len(self.encode_query("dimension probe"))
        return int(dimension)

    def encode_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order.

        The whole list goes to one ``encode_document`` call on purpose: inside a
        call, sentence-transformers sorts the texts by length (characters, a proxy
        for tokens) and batches neighbours, so padding stays small; the vectors come
        back in input order. Long texts go as the head the model reads, and batches are
        capped in tokens (:mod:`~hybrid_retriever.encoders.budget`): bounded memory.
        """
        if not texts:
            return []
        onnx = self._onnx_model()
        if onnx is not None:
            rows = onnx.encode_documents(texts, batch_size=self._batch_size)
            return [row.tolist() for row in rows]
        model = self.model
        max_tokens = model.max_seq_length
        with inference_context(model.device, resolve_dtype(self._precision, model.device)):
            vectors = model.encode_document(
                token_heads(texts, model.tokenizer, max_tokens),
                batch_size=batch_size_within(self._batch_size, max_tokens),
                convert_to_tensor=True,
                show_progress_bar=False,
            )
        # float() first: bf16 tensors have no numpy counterpart, and callers expect fp32.
        return [list(row) for row in vectors.float().cpu().tolist()]

    def encode_query(self, text: str) -> list[float]:
        """The vector of one query, encoded alone on ``QUERY_TORCH_THREADS`` threads.

        Alone, so that no batch changes its shape; in fp32 unless ``BF16`` was asked for
        explicitly (``AUTO`` keeps bf16 for documents), so that it is the same on every
        CPU family but for fp32 rounding (see ``encoders/threads.py``). Under ONNX: one
        intra-op thread (``encoders/onnx_model.py``).
        """
        onnx = self._onnx_model()
        if onnx is not None:
            vector: list[float] = onnx.encode_query(text).tolist()
            return vector
        model = self.model
        with (
            torch_threads_set_to(QUERY_TORCH_THREADS),
            inference_context(model.device, resolve_dtype(self._query_precision, model.device)),
        ):
            vectors = model.encode_query(
                token_heads([text], model.tokenizer, model.max_seq_length),
                batch_size=1,
                convert_to_tensor=True,
                show_progress_bar=False,
            )
        return list(vectors[0].float().cpu().tolist())

    @property
    def _query_precision(self) -> Precision:
        """Queries: bf16 only when asked for. Under ``AUTO`` one short text gains no clear
        speed from it (``benchmarks/query_vectors.py``), and fp32 gives the same query
        vector on every CPU family but for rounding."""
        return Precision.BF16 if self._precision is Precision.BF16 else Precision.FP32


class LangChainEmbeddingsEncoder(DenseEncoder):
    """Adapts any LangChain ``Embeddings`` (OpenAI, Hugging Face, Ollama, ...).

    LangChain embeddings do not report their dimension, so it is measured once
    by embedding a short probe text, and then cached.
    """

    def __init__(self, embeddings: Embeddings) -> None:
        self._embeddings = embeddings
        self._dimension: int | None = None

    def __repr__(self) -> str:
        return f"LangChainEmbeddingsEncoder({type(self._embeddings).__name__})"

    @property
    def name(self) -> str:
        return type(self._embeddings).__name__

    @property
    def runtime(self) -> str:
        """The ``Embeddings`` class, and its model where it names one (``model`` or
        ``model_name``, as most integrations do)."""
        kind = type(self._embeddings)
        model = getattr(self._embeddings, "model", None) or getattr(
            self._embeddings, "model_name", None
        )
        named = f" model={model!r}" if isinstance(model, str) else ""
        return f"LangChain {kind.__module__}.{kind.__qualname__}{named}"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = len(self._embeddings.embed_query("dimension probe"))
        return self._dimension

    def encode_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [list(map(float, v)) for v in self._embeddings.embed_documents(list(texts))]

    def encode_query(self, text: str) -> list[float]:
        return list(map(float, self._embeddings.embed_query(text)))


def as_dense_encoder(value: Any) -> DenseEncoder:
    """Accept a model name, a LangChain ``Embeddings`` or a ready ``DenseEncoder``."""
    if isinstance(value, DenseEncoder):
        return value
    if isinstance(value, str):
        return SentenceTransformerEncoder(value)
    if isinstance(value, Embeddings):
        return LangChainEmbeddingsEncoder(value)
    raise TypeError(
        f"dense_encoder must be a model name, a LangChain Embeddings or a DenseEncoder, "
        f"not {type(value).__name__}."
    )
