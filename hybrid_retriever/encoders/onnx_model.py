"""Running an exported encoder (``onnx_export.py``) with ONNX Runtime and its fast tokenizer.

Queries and documents get separate sessions, because ONNX Runtime fixes a
session's thread count when it is made:

* queries: one intra-op thread, sequential execution, no spinning. One short
  query's products are too small to gain from a second thread, and a fixed count
  keeps a query's vector a function of its text alone on a given machine (as in
  ``encoders/threads.py``); no spinning so that an idle retriever burns no CPU.
* documents: all the process's cores, spinning between operators (an ingestion keeps
  them busy), not after the run. int8 runs one text at a time (see
  :meth:`OnnxModel.encode_documents`); fp32 runs length-sorted batches, so that padding
  stays small, capped in padded tokens: SPLADE graphs materialise a batch's [documents,
  tokens, vocabulary] logits inside ONNX Runtime (:data:`SPARSE_BATCH_TOKENS`), and the
  arena keeps the largest batch's activations (:data:`DENSE_BATCH_TOKENS`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybrid_retriever.encoders.backend import EncoderBackend, onnx_runtime_installed
from hybrid_retriever.encoders.base import LazyModel
from hybrid_retriever.encoders.budget import token_heads
from hybrid_retriever.encoders.export_cache import read_checked
from hybrid_retriever.encoders.onnx_export import (
    MODEL_FILE,
    SPEC_FILE,
    TOKENIZER_FILE,
    Kind,
    exported_model,
)
from hybrid_retriever.errors import ModelLoadError

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime

logger = logging.getLogger(__name__)

#: What the INFO line says each backend runs.
RUNTIME_NAMES = {
    EncoderBackend.TORCH: "PyTorch",
    EncoderBackend.ONNX: "ONNX Runtime fp32",
    EncoderBackend.ONNX_INT8: "ONNX Runtime int8",
}

#: Padded tokens per SPLADE document batch: the logits block is tokens x vocabulary
#: x 4 bytes, 64 MB for 512 tokens of a 30,522-term vocabulary.
SPARSE_BATCH_TOKENS = 512

#: Padded tokens per dense document batch (16 documents of 256 tokens). ONNX Runtime's
#: arena keeps the largest batch's activations: with 32 such documents all-MiniLM-L6-v2
#: peaked at 1,136 MB RSS on 128 SciFact documents, with 16 at 717 MB, as fast.
DENSE_BATCH_TOKENS = 4096


class OnnxModel:
    """An exported model folder: tokenizer, spec and lazily made ONNX Runtime sessions."""

    def __init__(self, folder: Path) -> None:
        """``folder`` was checked against its manifest (``export_cache.problem``); the
        model's bytes are checked again as they are read, so what runs is what was
        exported. Anything that still fails to load names the folder to delete."""
        from tokenizers import Tokenizer

        self.folder = folder
        try:
            self.spec: dict[str, Any] = json.loads((folder / SPEC_FILE).read_text(encoding="utf-8"))
            self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
            self.tokenizer.no_padding()
            self.tokenizer.enable_truncation(int(self.spec["max_length"]))
            model = read_checked(folder, MODEL_FILE)
            self._query_session = _session(model, threads=1, spinning=False)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"The ONNX export in {folder} cannot be loaded ({type(exc).__name__}: {exc}). "
                "Delete that folder; the model is exported again on next use."
            ) from exc
        self._input_names = [i.name for i in self._query_session.get_inputs()]
        self._document_session: onnxruntime.InferenceSession | None = None
        self._lock = threading.Lock()
        # Made here, not on first use: every query reads it (``_budget``), and a lazy one
        # would put a lock, shared with the document session's creation, on the query path.
        self._counter = TokenCounter(self.tokenizer)

    @property
    def max_length(self) -> int:
        return int(self.spec["max_length"])

    def token_counter(self) -> TokenCounter:
        """For ``truncation.py``: counts tokens like the model's tokenizer, without loading
        the PyTorch model."""
        return self._counter

    def encode_query(self, text: str) -> np.ndarray:
        """The model's output row for one query, alone (batch of one, no padding)."""
        import numpy as np

        (head,) = token_heads([self.spec["query_prompt"] + text], *self._budget())
        encoding = self.tokenizer.encode(head)
        feeds = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
        }
        out: np.ndarray = self._query_session.run(None, self._feeds(feeds))[0][0]
        return out

    def encode_documents(self, texts: Sequence[str], *, batch_size: int) -> list[np.ndarray]:
        """One output row per text, in input order, through length-sorted batches.

        int8 graphs run one text at a time: they quantise activations with one scale per
        run, so in a batch a document's vector would depend on its neighbours (and their
        padding). Alone it depends on its text only, as a query's does, at no measurable
        cost (``benchmarks/onnx_probes.py batching``: 67.5 and 67.3 dense docs/s against
        56.9 and 57.4 in batches of 32, SPLADE 96.1 and 98.7 against 99.2 and 100.0;
        SciFact, 2 cores).
        """
        if self.spec.get("int8"):
            batch_size = 1
        prompt = self.spec["document_prompt"]
        heads = token_heads([prompt + text for text in texts], *self._budget())
        encodings = self.tokenizer.encode_batch(heads)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        token_cap = SPARSE_BATCH_TOKENS if self.spec["kind"] == "sparse" else DENSE_BATCH_TOKENS
        session = self._documents()
        rows: list[np.ndarray | None] = [None] * len(texts)
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and end - start < batch_size:
                width = len(encodings[order[end]].ids)  # the longest so far: sorted
                if (end + 1 - start) * width > token_cap:
                    break
                end += 1
            batch = [encodings[i] for i in order[start:end]]
            output = session.run(None, self._feeds(_padded(batch)))[0]
            for index, row in zip(order[start:end], output, strict=True):
                rows[index] = row
            start = end
        return [row for row in rows if row is not None]

    def _budget(self) -> tuple[TokenCounter, int]:
        """For :func:`token_heads`: the tokenizer reads only the head of a long text that
        the model reads, so memory does not grow with the text's length."""
        return self.token_counter(), self.max_length

    def _feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: feeds[name] for name in self._input_names}

    def _documents(self) -> onnxruntime.InferenceSession:
        with self._lock:
            if self._document_session is None:
                self._document_session = _session(
                    read_checked(self.folder, MODEL_FILE), threads=_cores(), spinning=True
                )
            return self._document_session


class OnnxSlot:
    """An encoder's ONNX side, the same for both encoders: the backend it resolved to, and
    the exported model, loaded on first use (None when PyTorch runs the encoder)."""

    def __init__(
        self,
        model_name: str,
        *,
        kind: Kind,
        backend: EncoderBackend,
        requested: EncoderBackend,
        cache_dir: str | os.PathLike[str] | None,
        unsupported: str,
    ) -> None:
        self._model_name = model_name
        self._kind: Kind = kind
        self._backend = backend
        self._requested = requested
        self._cache_dir = cache_dir
        self._unsupported = unsupported
        # In a 1-tuple: None (PyTorch runs it) is a loaded value too.
        self._lazy: LazyModel[tuple[OnnxModel | None]] = LazyModel(lambda: (self._load(),))

    @property
    def loaded(self) -> bool:
        return self._lazy.loaded

    def model(self) -> OnnxModel | None:
        """The exported model (exported and loaded on first use), or None under PyTorch."""
        return self._lazy.get()[0]

    @property
    def backend(self) -> EncoderBackend:
        """The runtime that encodes: TORCH, or the ONNX backend resolved."""
        return EncoderBackend.TORCH if self.model() is None else self._backend

    def token_counter(self) -> tuple[TokenCounter, int] | None:
        """``(token counter, max tokens)`` for ``truncation.py``'s tally under ONNX (no
        PyTorch model loaded for it); None under PyTorch, where the model says."""
        model = self.model()
        return None if model is None else (model.token_counter(), model.max_length)

    def _load(self) -> OnnxModel | None:
        """None when PyTorch runs the encoder: the backend is TORCH, or AUTO met a model
        the export does not handle. An explicit ONNX choice on such a model raises
        ``ModelLoadError`` (``unsupported`` says what the export handles).

        Logs once per encoder, at INFO, which runtime runs it: the default's speed and
        its same-vectors-on-every-CPU promise hold only under ONNX Runtime int8."""
        model = self._export()
        if model is not None:
            logger.info(
                "%s encoder %s: %s", self._kind, self._model_name, RUNTIME_NAMES[self._backend]
            )
        else:
            logger.info(
                "%s encoder %s: PyTorch (%s)", self._kind, self._model_name, self._torch_reason()
            )
        return model

    def _torch_reason(self) -> str:
        if self._requested is EncoderBackend.TORCH:
            return "backend='torch'"
        if self._backend is EncoderBackend.TORCH:
            if not onnx_runtime_installed():
                return "onnxruntime is not installed"
            return "the device or precision asked for needs it"
        return f"the ONNX export handles only {self._unsupported}"

    def _export(self) -> OnnxModel | None:
        if self._backend is EncoderBackend.TORCH:
            return None
        folder = exported_model(
            self._model_name,
            kind=self._kind,
            int8=self._backend is EncoderBackend.ONNX_INT8,
            cache_dir=self._cache_dir,
        )
        if folder is not None:
            return OnnxModel(folder)
        if self._requested is EncoderBackend.AUTO:
            return None
        raise ModelLoadError(
            f"The {self._kind} model {self._model_name!r} is not one the ONNX export handles "
            f"({self._unsupported}). Pass backend='torch'."
        )


class TokenCounter:
    """Called like a Hugging Face tokenizer on a list of texts, it returns their full
    ``input_ids`` (special tokens included, nothing truncated); the rest is ignored."""

    def __init__(self, tokenizer: Any) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

        self._fast: Any = None

    def __call__(self, texts: Sequence[str], **_: Any) -> dict[str, list[list[int]]]:
        return {"input_ids": [e.ids for e in self._tokenizer.encode_batch(list(texts))]}

    def fast_tokenizer(self) -> Any:
        """The same tokenizer as a transformers ``PreTrainedTokenizerFast`` (character
        offsets, special tokens), for ``chunking.py``: no PyTorch model is loaded for it."""
        if self._fast is None:
            from transformers import PreTrainedTokenizerFast

            self._fast = PreTrainedTokenizerFast(tokenizer_object=self._tokenizer)  # type: ignore[no-untyped-call]
        return self._fast


def _padded(batch: Sequence[Any]) -> dict[str, np.ndarray]:
    """Right-padded int64 inputs for a batch of ``tokenizers`` encodings (pad id 0; the
    graphs mask padded positions out)."""
    import numpy as np

    width = max(len(e.ids) for e in batch)
    arrays = {key: np.zeros((len(batch), width), dtype=np.int64) for key in _ARRAYS}
    for row, encoding in enumerate(batch):
        n = len(encoding.ids)
        arrays["input_ids"][row, :n] = encoding.ids
        arrays["attention_mask"][row, :n] = 1
        arrays["token_type_ids"][row, :n] = encoding.type_ids
    return arrays


_ARRAYS = ("input_ids", "attention_mask", "token_type_ids")


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _session(
    model: Path | bytes, *, threads: int, spinning: bool, spin_after_run: bool = False
) -> onnxruntime.InferenceSession:
    """``spinning``: idle intra-op threads spin a moment before they sleep, which saves
    their wake-ups between a run's operators (``benchmarks/onnx_probes.py spinning``: 6-12%
    more int8 SciFact documents per second on 2 cores) at the price of that moment's CPU.
    They stop when the run ends (``session.force_spinning_stop``): threads still
    spinning after one encoder's run took the cores from the other encoder's next run,
    and documents sent through both encoders one at a time ran at half speed
    (``onnx_probes.py alternating``: 18.1 and 18.0 docs/s, against 36.6 and 35.4 with
    the stop). ``spin_after_run=True`` keeps them spinning, for that probe only."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if spinning and not spin_after_run:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    source = str(model) if isinstance(model, Path) else model
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
