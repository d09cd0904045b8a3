"""SPLADE sparse encoder on a ``sentence_transformers.SparseEncoder`` model.

SPLADE (Formal et al., SIGIR 2021, https://arxiv.org/abs/2107.05720; max pooling
from SPLADE v2, https://arxiv.org/abs/2109.10086) scores every vocabulary term
from a masked-LM head and keeps ``log(1 + relu(logit))`` max-pooled over tokens;
most terms come out zero, so the result is sparse.

Documents go through our own pooling (``encode_documents``): sentence-transformers
materialises the [batch, tokens, vocab] logits and applies ``log1p`` to every one
of them, which makes encoding memory-bound (GBs of RSS for a 4-million-parameter
model). Here the vocabulary projection runs in bounded chunks of tokens and only a
running [batch, vocab] maximum is kept; because ``log1p∘relu`` is monotone it
commutes with the maximum, so it is applied once per document, not once per token.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hybrid_retriever.encoders.backend import (
    EncoderBackend,
    as_backend,
    resolve_backend,
    runtime_label,
)
from hybrid_retriever.encoders.base import LazyModel, SparseEncoder
from hybrid_retriever.encoders.budget import batch_size_within, token_heads
from hybrid_retriever.encoders.loading import load_sentence_transformers_model
from hybrid_retriever.encoders.masked_lm import MaskedLmSplit, masked_lm_split
from hybrid_retriever.encoders.onnx_model import OnnxModel, OnnxSlot
from hybrid_retriever.encoders.precision import (
    Precision,
    as_precision,
    inference_context,
    resolve_dtype,
)
from hybrid_retriever.encoders.threads import QUERY_TORCH_THREADS, torch_threads_set_to
from hybrid_retriever.errors import InvalidParameterError, ModelLoadError
from hybrid_retriever.model_catalog import DEFAULT_SPARSE_MODEL
from hybrid_retriever.vectors import SparseVector

if TYPE_CHECKING:
    import numpy as np
    import torch
    from sentence_transformers import SparseEncoder as SentenceTransformersSparseEncoder


#: AUTO: bf16 screening never changes document vectors (see ``SpladeEncoder``), so
#: take its speed wherever the hardware has native bf16.
DEFAULT_SPLADE_PRECISION = Precision.AUTO

#: Upper bound on the transient logits block of one projection chunk. 32 MiB is
#: 272 tokens of a 30,522-term vocabulary in fp32 (544 in bf16): large enough for
#: an efficient matrix multiply, small enough to stay in a 32 MiB L3 cache, and
#: independent of batch size and document length.
LOGITS_CHUNK_BYTES = 32 * 2**20

#: Token counts are rounded up to this (by repeating a real token, which leaves a
#: maximum unchanged): oneDNN's fp32 kernels measured up to 1.7x slower on
#: widths that are not a multiple of 16.
_TOKEN_ALIGN = 16

#: Batches enter the transformer padded to a multiple of this many tokens. With
#: every batch its own length, glibc's heap kept the freed activations of each
#: size: RSS climbed past 1.8 GB over SciFact's 5,183 documents. With a few
#: bucket sizes the freed blocks are reused and it levels off near 1 GB.
_BODY_ALIGN = 64

#: Upper bound on the [batch, tokens, vocab] logits of sentence-transformers' own path
#: (models :func:`masked_lm_split` cannot cut), which it holds whole, about three times
#: over: 32 texts of 512 tokens of a 30,522-term vocabulary are 2 GB in fp32. The batch
#: is lowered to fit, counting every text at the model's length limit.
FALLBACK_LOGITS_BYTES = 256 * 2**20

#: Texts tokenized at a time when measuring lengths for the length-sorted batches.
_LENGTH_PROBE_TEXTS = 2048

#: The prompts ``SparseEncoder.encode_document`` looks for, in its order.
_DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")


class SpladeEncoder(SparseEncoder):
    """A SPLADE model (a masked-LM with SPLADE pooling), loaded on first use.

    Queries go through ``encode_query`` and documents through ``encode_documents``
    (our bounded-memory equivalent of ``encode_document``), because some SPLADE
    variants treat them differently.

    ``batch_size`` is the number of documents per forward pass; documents are
    sorted by token count first, so a batch wastes little on padding.

    ``precision`` (keyword-only, default ``Precision.AUTO``) only changes speed, not
    the vectors: with bf16 (``Precision.BF16``, or ``AUTO`` on hardware with native
    bf16) the vocabulary projection of documents is screened in bf16 and the terms
    that survive are recomputed in fp32 (see :func:`splade_max_pool`); measured 1.5x
    faster on an AVX512-BF16 CPU. Queries always run in fp32: one short text has
    nothing to gain. Models outside the plain shape (see :func:`masked_lm_split`)
    run sentence-transformers' own path: there only an explicit ``BF16`` applies
    (as bf16 autocast, which does change the vectors); ``AUTO`` stays fp32.

    ``backend`` (keyword-only, default ``EncoderBackend.AUTO``) and ``onnx_cache_dir``:
    as for ``SentenceTransformerEncoder``; the ONNX export covers models of the plain
    shape only (others run in PyTorch under ``AUTO``).
    """

    def __init__(
        self,
        model: str = DEFAULT_SPARSE_MODEL,
        *,
        device: str | None = None,
        batch_size: int = 32,
        precision: Precision | str = DEFAULT_SPLADE_PRECISION,
        backend: EncoderBackend | str = EncoderBackend.AUTO,
        onnx_cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._model_name = model
        self._device = device
        self._batch_size = _positive_batch_size(batch_size)
        self._precision = as_precision(precision)
        self._requested_backend = as_backend(backend)
        self._backend = resolve_backend(
            self._requested_backend, device=device, precision=self._precision
        )
        self._model: LazyModel[SentenceTransformersSparseEncoder] = LazyModel(self._load)
        self._onnx = OnnxSlot(
            model,
            kind="sparse",
            backend=self._backend,
            requested=self._requested_backend,
            cache_dir=onnx_cache_dir,
            unsupported="a BERT masked-LM with SPLADE max pooling",
        )

    def __repr__(self) -> str:
        return f"SpladeEncoder(model={self._model_name!r})"

    def _load(self) -> SentenceTransformersSparseEncoder:
        from sentence_transformers import SparseEncoder as SentenceTransformersSparseEncoder

        model = load_sentence_transformers_model(
            SentenceTransformersSparseEncoder, self._model_name, kind="sparse", device=self._device
        )
        _require_masked_lm(model, self._model_name)
        return model

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
        """As ``SentenceTransformerEncoder.runtime``."""
        return runtime_label(self.backend, lambda: self.dtype)

    @property
    def precision(self) -> Precision:
        """The precision asked for; ``dtype`` says what it means on the model's device."""
        return self._precision

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the document screening pass on the model's device (loads it)."""
        if self._onnx_model() is not None:
            import torch

            return torch.float32
        return resolve_dtype(self._precision, self.model.device)

    @property
    def model(self) -> SentenceTransformersSparseEncoder:
        """The underlying sentence-transformers model (loads it if needed)."""
        return self._model.get()

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """One sparse vector per text, in order; equal to ``model.encode_document``.

        Models of the plain shape (a BERT masked-LM followed by max SPLADE pooling)
        run through :func:`splade_max_pool`, in bounded memory; any other model falls
        back to sentence-transformers' own ``encode_document``.
        """
        if not texts:
            return []
        onnx = self._onnx_model()
        if onnx is not None:
            limit = onnx.spec.get("max_active_dims")
            rows = onnx.encode_documents(texts, batch_size=self._batch_size)
            return [_sparse_vector(row, limit) for row in rows]
        model = self.model
        dtype = resolve_dtype(self._precision, model.device)
        split = masked_lm_split(model)
        if split is None:
            # Here bf16 changes the vectors, so only an explicit BF16 turns it on.
            fallback_precision = (
                Precision.BF16 if self._precision is Precision.BF16 else Precision.FP32
            )
            return self._sentence_transformers(
                model.encode_document, texts, fallback_precision, logits_bound=True
            )
        texts = token_heads(texts, model.tokenizer, model.max_seq_length)
        batch_size = batch_size_within(self._batch_size, model.max_seq_length)
        return _encode_documents_chunked(model, split, texts, batch_size, dtype)

    def encode_query(self, text: str) -> SparseVector:
        """The sparse vector of one query, encoded alone, in fp32, on ``QUERY_TORCH_THREADS``
        threads: the same whatever else is searched with it (see ``encoders/threads.py``).

        Queries are short, so the MLM head costs little here, and fp32 keeps query
        vectors identical to sentence-transformers' whatever the precision setting.
        """
        onnx = self._onnx_model()
        if onnx is not None:
            return _sparse_vector(onnx.encode_query(text), onnx.spec.get("max_active_dims"))
        with torch_threads_set_to(QUERY_TORCH_THREADS):
            return self._sentence_transformers(self.model.encode_query, [text], Precision.FP32)[0]

    def _sentence_transformers(
        self, encode: Any, texts: Sequence[str], precision: Precision, *, logits_bound: bool = False
    ) -> list[SparseVector]:
        """Encode with sentence-transformers' own ``encode_query`` / ``encode_document``;
        ``logits_bound``: batches within :data:`FALLBACK_LOGITS_BYTES` of logits."""
        model = self.model
        max_tokens = model.max_seq_length
        batch_size = batch_size_within(self._batch_size, max_tokens)
        if logits_bound and max_tokens:
            per_text = max_tokens * len(model.tokenizer) * 4
            batch_size = max(1, min(batch_size, FALLBACK_LOGITS_BYTES // per_text))
        with inference_context(model.device, resolve_dtype(precision, model.device)):
            matrix = encode(
                token_heads(texts, model.tokenizer, max_tokens),
                batch_size=batch_size,
                convert_to_tensor=True,
                convert_to_sparse_tensor=True,
                show_progress_bar=False,
            )
            # Inside: a sparse tensor made in inference mode cannot coalesce outside.
            return sparse_rows(matrix, len(texts))

    @functools.cached_property
    def vocabulary_size(self) -> int:
        """How many terms a vector can index: the model's output size (loads the model).
        Vectors computed elsewhere are checked against it (``precomputed.py``)."""
        onnx = self._onnx_model()
        if onnx is not None:  # the query output is the dense [vocabulary] row
            return len(onnx.encode_query("vocabulary"))
        size = self.model.get_sentence_embedding_dimension()
        if size is None:  # pragma: no cover - a custom module that does not say
            raise ModelLoadError(f"{self._model_name!r} does not say its vocabulary size.")
        return int(size)

    def decode(self, vector: SparseVector, *, top_k: int = 10) -> list[tuple[str, float]]:
        """The ``top_k`` heaviest vocabulary tokens of ``vector``, for explanations."""
        order = sorted(range(len(vector)), key=lambda i: -vector.values[i])[:top_k]
        onnx = self._onnx_model()
        if onnx is not None:
            ids = [vector.indices[i] for i in order]
            tokens = [onnx.tokenizer.id_to_token(i) or f"[{i}]" for i in ids]
        else:
            tokens = self.model.tokenizer.convert_ids_to_tokens([vector.indices[i] for i in order])
        return [(str(token), vector.values[i]) for token, i in zip(tokens, order, strict=True)]


def splade_max_pool(
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    activation: str = "relu",
    chunk_rows: int,
    screen_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """SPLADE max pooling of a padded batch without materialising its logits.

    ``hidden`` is [batch, tokens, hidden_size] and ``attention_mask`` [batch,
    tokens] (non-zero on real tokens); ``weight`` / ``bias`` are the vocabulary
    projection. Returns the float32 [batch, vocab] vectors that ``SpladePooling``
    computes from the full logits, while holding at most ``chunk_rows`` tokens'
    logits at a time.

    Each document's real tokens are packed to the front and its row is padded with
    copies of its first token (a repeat cannot change a maximum) up to a multiple of
    ``_TOKEN_ALIGN``, so no masking is needed. Consecutive documents share a
    [vocab, documents x tokens] product while it fits ``chunk_rows``; a longer one
    gets products of ``chunk_rows`` tokens to itself. Length-sorted batches thus
    waste little on padding. The bias and ``log1p∘relu`` (monotone) are applied
    once, to the pooled maximum.

    ``screen_weight`` (``weight`` in a cheaper dtype, e.g. bf16) turns on
    screen-and-refine: the full projection runs in that dtype and only the terms
    whose maximum can be positive within a proven error bound
    (:func:`_screen_margin`) are recomputed in ``hidden``'s dtype, so the result is
    the full-precision one at the cheaper multiply's speed (for splade-tiny on
    SciFact ~5 % of the vocabulary survives the screen).
    """
    import torch

    if chunk_rows < 1:
        raise InvalidParameterError(f"chunk_rows must be >= 1, got {chunk_rows}.")
    filled, lengths = _pack_tokens(hidden, attention_mask.bool())
    widths = [max(1, -(-length // _TOKEN_ALIGN)) * _TOKEN_ALIGN for length in lengths.tolist()]
    projection = weight if screen_weight is None else screen_weight
    source = filled.to(projection.dtype)
    n_docs, _, hidden_size = source.shape
    vocab = weight.shape[0]
    # Every block is written into this one buffer: allocating a fresh ~32 MiB block
    # each time let glibc's heap grow with the number of documents encoded.
    workspace = torch.empty(
        vocab * chunk_rows * projection.element_size(), dtype=torch.uint8, device=hidden.device
    )
    pooled = torch.empty((n_docs, vocab), dtype=torch.float32, device=hidden.device)
    first = 0
    while first < n_docs:
        width = widths[first]
        if width > chunk_rows:
            pooled[first] = float("-inf")
            for start in range(0, width, chunk_rows):
                tokens = source[first, start : min(width, start + chunk_rows)]
                logits = _product(projection, tokens, workspace)
                torch.maximum(pooled[first], logits.amax(dim=1), out=pooled[first])
            first += 1
            continue
        end = first + 1
        while end < n_docs and (end + 1 - first) * max(width, widths[end]) <= chunk_rows:
            width = max(width, widths[end])
            end += 1
        logits = _product(projection, source[first:end, :width].reshape(-1, hidden_size), workspace)
        pooled[first:end] = logits.view(vocab, end - first, width).amax(dim=2).t()
        first = end
    if bias is not None:
        # Per term, so added after the maximum: exact, since rounding is monotone.
        pooled += bias.float()
    if screen_weight is not None:
        # The same byte budget for the refinement's blocks, in the refinement's dtype.
        refine_rows = max(1, chunk_rows * screen_weight.element_size() // weight.element_size())
        pooled = _refine(
            pooled, filled, widths, weight, bias, screen_weight.dtype, refine_rows, workspace
        )
    pooled[lengths == 0] = float("-inf")
    return _activate(pooled, activation)


def _product(weight: torch.Tensor, tokens: torch.Tensor, workspace: torch.Tensor) -> torch.Tensor:
    """``weight @ tokens.T`` ([rows, tokens] logits), written into ``workspace``'s bytes."""
    import torch

    shape = (weight.shape[0], tokens.shape[0])
    out = workspace.view(weight.dtype)[: shape[0] * shape[1]].view(shape)
    return torch.mm(weight, tokens.t(), out=out)


def _pack_tokens(hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's real tokens first, in order, then copies of its first real token,
    to a width that is a multiple of ``_TOKEN_ALIGN``; and the real-token counts."""
    import torch

    n_docs, width, hidden_size = hidden.shape
    aligned = -(-width // _TOKEN_ALIGN) * _TOKEN_ALIGN
    lengths = mask.sum(dim=1)
    # A stable sort on "is padding" lists each row's real positions first, in order.
    real_first = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)
    real_first = torch.cat([real_first, real_first[:, :1].expand(n_docs, aligned - width)], dim=1)
    positions = torch.arange(aligned, device=hidden.device).expand(n_docs, aligned)
    index = torch.where(positions < lengths.unsqueeze(1), real_first, real_first[:, :1])
    filled = hidden.gather(1, index.unsqueeze(2).expand(n_docs, aligned, hidden_size))
    return filled, lengths


def _screen_margin(
    hidden_norm: torch.Tensor, weight_norms: torch.Tensor, hidden_size: int, dtype: torch.dtype
) -> torch.Tensor:
    """How far a ``dtype`` logit can be from the exact one, per term: a proven bound.

    Rounding ``h`` and ``w`` to a format with unit roundoff ``u`` (2**-8 for bf16)
    moves each product ``h_i w_i`` by at most ``(2u + u²)|h_i w_i|``; accumulating
    the ``n = hidden_size`` products in fp32 adds at most ``n·2**-24·Σ|h_i w_i|``;
    rounding the result adds ``u·|logit| ≤ u·Σ|h_i w_i|``. So the error is below
    ``(3u + u² + n·2**-24)·Σ|h_i w_i| ≤ (3u + u² + n·2**-24)·‖h‖·‖w‖``
    (Cauchy-Schwarz). The margin doubles the ``u`` part, to ``8u``: headroom for the
    full-precision reference's own rounding and for multiply kernels that round
    partial sums (cuBLAS split-K), at the cost of refining a few more terms.
    """
    import torch

    unit_roundoff = torch.finfo(dtype).eps / 2
    factor = 8 * unit_roundoff + hidden_size * 2.0**-24
    margin: torch.Tensor = factor * hidden_norm * weight_norms
    return margin


def _refine(
    screened: torch.Tensor,
    filled: torch.Tensor,
    widths: Sequence[int],
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    screen_dtype: torch.dtype,
    chunk_rows: int,
    workspace: torch.Tensor,
) -> torch.Tensor:
    """Recompute, in ``filled``'s dtype, the terms the screen could not rule out."""
    import torch

    weight_norms = weight.float().norm(dim=1)
    token_norms = filled.float().norm(dim=2).amax(dim=1)  # padding repeats a real token
    exact = torch.full_like(screened, float("-inf"))
    for doc, width in enumerate(widths):
        margin = _screen_margin(token_norms[doc], weight_norms, weight.shape[1], screen_dtype)
        terms = torch.nonzero(screened[doc] + margin > 0).squeeze(1)
        if terms.numel() == 0:
            continue
        rows = weight[terms]
        for start in range(0, width, chunk_rows):
            tokens = filled[doc, start : min(width, start + chunk_rows)]
            maxima = _product(rows, tokens, workspace).amax(dim=1).float()
            exact[doc, terms] = torch.maximum(exact[doc, terms], maxima)
        if bias is not None:
            exact[doc, terms] += bias[terms].float()
    return exact


def _activate(logits: torch.Tensor, activation: str) -> torch.Tensor:
    """SpladePooling's activation: ``log1p(relu(x))``, applied twice for "log1p_relu"."""
    result = logits.relu().log1p_()
    if activation == "log1p_relu":
        result = result.log1p_()
    return result


def _encode_documents_chunked(
    model: Any, split: MaskedLmSplit, texts: list[str], batch_size: int, dtype: torch.dtype
) -> list[SparseVector]:
    """Length-sorted batches through ``split``; results in input order."""
    import torch
    from sentence_transformers.util import batch_to_device, select_max_active_dims

    device = model.device
    prompt = _document_prompt(model)
    order = sorted(range(len(texts)), key=_token_counts(model, texts, prompt).__getitem__)
    weight = split.decoder.weight
    bias = split.decoder.bias
    # Reduced precision only screens the vocabulary projection (most of the cost);
    # the transformer body and the surviving terms stay in the model's precision, so
    # the vectors do not depend on the precision chosen.
    screen_weight = (
        weight.to(dtype) if weight.dtype == torch.float32 and dtype == torch.bfloat16 else None
    )
    element_size = (screen_weight if screen_weight is not None else weight).element_size()
    chunk_rows = _chunk_rows(weight.shape[0], element_size)
    max_active_dims = model.max_active_dims
    encoded: list[SparseVector] = []  # in `order`, not input order
    model.eval()
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        features = model.preprocess([texts[i] for i in batch], prompt=prompt, task="document")
        features = batch_to_device(_pad_to_bucket(features, model), device)
        with inference_context(device, weight.dtype):
            pooled = splade_max_pool(
                split.hidden(features),
                features["attention_mask"],
                weight,
                bias,
                activation=split.activation,
                chunk_rows=chunk_rows,
                screen_weight=screen_weight,
            )
            if max_active_dims is not None:
                pooled = select_max_active_dims(pooled, max_active_dims=max_active_dims)
            encoded.extend(sparse_rows(pooled.to_sparse(), len(batch)))
    position = [0] * len(texts)
    for rank, index in enumerate(order):
        position[index] = rank
    return [encoded[rank] for rank in position]


def _pad_to_bucket(features: dict[str, Any], model: Any) -> dict[str, Any]:
    """Right-pad the token inputs to a multiple of ``_BODY_ALIGN`` (see there).

    The extra positions are masked padding, so real tokens' states only move by
    rounding. Left as they are when the inputs are not the plain right-padded BERT
    ones, or when the bucket would pass the model's position limit.
    """
    import torch

    keys = {"input_ids", "attention_mask", "token_type_ids"}
    tensors = {key: value for key, value in features.items() if isinstance(value, torch.Tensor)}
    tokenizer = model.tokenizer
    if set(tensors) - keys or "input_ids" not in tensors or tokenizer.padding_side != "right":
        return features
    width = tensors["input_ids"].shape[1]
    bucket = -(-width // _BODY_ALIGN) * _BODY_ALIGN
    limit = getattr(model[0].auto_model.config, "max_position_embeddings", width)
    if bucket == width or bucket > limit:
        return features
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    padded = dict(features)
    for key, value in tensors.items():
        padded[key] = torch.nn.functional.pad(
            value, (0, bucket - width), value=pad_id if key == "input_ids" else 0
        )
    return padded


def _chunk_rows(vocab_size: int, element_size: int) -> int:
    """Tokens per projection block: within ``LOGITS_CHUNK_BYTES``, a multiple of
    ``_TOKEN_ALIGN`` (fast oneDNN kernels; see there)."""
    rows = LOGITS_CHUNK_BYTES // (vocab_size * element_size)
    return max(_TOKEN_ALIGN, rows - rows % _TOKEN_ALIGN)


def _document_prompt(model: Any) -> str | None:
    """The prompt ``SparseEncoder.encode_document`` would prepend, if any."""
    prompts: dict[str, str] = model.prompts
    for name in _DOCUMENT_PROMPT_NAMES:
        if name in prompts:
            return prompts[name]
    default_name = model.default_prompt_name
    return prompts.get(default_name) if default_name is not None else None


def _token_counts(model: Any, texts: list[str], prompt: str | None) -> list[int]:
    """Token count of each text as encoded (prompt included, truncated), for sorting.

    Tokenized a slice at a time so that only the counts are kept, whatever the
    number of texts.
    """
    max_length = model.max_seq_length
    counts: list[int] = []
    for start in range(0, len(texts), _LENGTH_PROBE_TEXTS):
        block = texts[start : start + _LENGTH_PROBE_TEXTS]
        if prompt:
            block = [prompt + text for text in block]
        encoded = model.tokenizer(
            block,
            truncation=max_length is not None,
            max_length=max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        counts.extend(len(ids) for ids in encoded["input_ids"])
    return counts


def _sparse_vector(row: np.ndarray, max_active_dims: int | None) -> SparseVector:
    """The non-zero terms of a dense [vocab] row (the heaviest ``max_active_dims`` if set)."""
    import numpy as np

    indices = np.flatnonzero(row)
    if max_active_dims is not None and len(indices) > max_active_dims:
        keep = np.argpartition(-row[indices], max_active_dims - 1)[:max_active_dims]
        indices = np.sort(indices[keep])
    return SparseVector(indices=indices.tolist(), values=row[indices].astype(float).tolist())


def _positive_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidParameterError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    return batch_size


def sparse_rows(matrix: torch.Tensor, n_rows: int) -> list[SparseVector]:
    """Split a [n_rows, vocab] torch sparse COO tensor into one SparseVector per row."""
    import torch

    coalesced = matrix.coalesce().cpu()
    rows, columns = coalesced.indices()
    values = coalesced.values().float()
    # Coalesced COO indices are sorted row-major, so each row is a contiguous run.
    counts = torch.bincount(rows, minlength=n_rows).tolist()
    vectors: list[SparseVector] = []
    start = 0
    for count in counts:
        end = start + count
        vectors.append(
            SparseVector(indices=columns[start:end].tolist(), values=values[start:end].tolist())
        )
        start = end
    return vectors


def _require_masked_lm(model: Any, name: str) -> None:
    """SPLADE needs a masked-LM head; anything else produces meaningless weights."""
    first_module = model[0]
    architecture = type(getattr(first_module, "auto_model", first_module)).__name__
    if not architecture.endswith("ForMaskedLM"):
        raise ModelLoadError(
            f"The sparse model {name!r} is a {architecture}, not a masked-language model, so "
            "it cannot produce SPLADE vectors. Pass a SPLADE checkpoint (a *ForMaskedLM model "
            "such as 'splade-tiny' or 'naver/splade-cocondenser-ensembledistil')."
        )


def as_sparse_encoder(value: Any) -> SparseEncoder:
    """Accept a model name or a ready ``SparseEncoder``."""
    if isinstance(value, SparseEncoder):
        return value
    if isinstance(value, str):
        return SpladeEncoder(value)
    raise TypeError(
        f"sparse_encoder must be a model name or a SparseEncoder, not {type(value).__name__}."
    )
