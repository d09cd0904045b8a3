"""Exporting an encoder's model to ONNX once, offline, into a cache folder.

The export traces the sentence-transformers model with PyTorch (from the local
model folder; no hub), with the pooling inside the graph, so that at run time only
``onnxruntime`` and the model's fast tokenizer are needed:

* dense: BERT, mean pooling over real tokens, then L2 normalisation;
* SPLADE: BERT masked-LM, max over real tokens of the vocabulary logits, bias,
  then ``log(1 + relu(x))`` (the bias after the maximum: exact, and it saves an
  addition per token and term).

Each export lands in ``<cache>/<model>-<kind>[-int8]-<key>/`` (``model.onnx``, the
tokenizer, ``spec.json`` and ``manifest.json``), where the key covers the model's files,
this module's format version and the versions of the packages that make the export
(torch, transformers, sentence-transformers, tokenizers, onnx, onnxruntime), so a
changed model or toolchain is exported again. ``export_cache.py`` checks each export
against its manifest before it is used and writes new ones atomically.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hybrid_retriever.encoders.export_cache import CACHE_ENV as CACHE_ENV  # re-exported
from hybrid_retriever.encoders.export_cache import cache_root, cached_export
from hybrid_retriever.errors import InvalidParameterError, ModelLoadError
from hybrid_retriever.model_catalog import not_found_hint, resolve_model

if TYPE_CHECKING:
    import torch

Kind = Literal["dense", "sparse"]

#: Bump when the exported graphs, ``spec.json`` or the manifest change meaning: old
#: exports are then left alone and new ones made.
FORMAT_VERSION = 3

SPEC_FILE = "spec.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
EXPORTED_FILES = (MODEL_FILE, TOKENIZER_FILE, SPEC_FILE)

#: The packages whose versions can change an export (the traced graph, the int8
#: quantisation, the saved tokenizer): part of the cache key.
EXPORT_PACKAGES = (
    "torch",
    "transformers",
    "sentence-transformers",
    "tokenizers",
    "onnx",
    "onnxruntime",
)

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def exported_model(
    name: str, *, kind: Kind, int8: bool, cache_dir: str | os.PathLike[str] | None = None
) -> Path | None:
    """The folder holding ``name``'s ONNX export, checked whole (exported now if missing
    or damaged; see ``export_cache.py``).

    None when the model's shape is not one this module can export (then PyTorch
    runs it); ``ModelLoadError`` when its files cannot be found.
    """
    source = model_folder(name, kind=kind)
    key = content_hash(source, kind=kind, int8=int8)
    identity = {"format": FORMAT_VERSION, "kind": kind, "int8": int8, "key": key}
    return cached_export(
        cache_root(cache_dir),
        f"{_safe(name)}-{kind}{'-int8' if int8 else ''}-{key}",
        identity,
        files=EXPORTED_FILES,
        space_needed=_space_needed(source, int8=int8),
        write=lambda scratch: _export(name, source, scratch, kind=kind, int8=int8),
    )


def model_folder(name: str, *, kind: Kind) -> Path:
    """The local folder of ``name``: a bundled model, a directory, or a cached hub download."""
    resolved = resolve_model(name)
    if os.path.isdir(resolved):
        return Path(resolved)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(resolved))
    except Exception as exc:
        typo = not_found_hint(name)
        if typo is not None:
            raise ModelLoadError(f"Could not load the {kind} model: {typo}") from exc
        raise ModelLoadError(
            f"Could not load the {kind} model {name!r} (looked for {resolved!r}) to export "
            f"it to ONNX: {type(exc).__name__}: {exc}. Pass an existing local model folder, "
            "make the hub reachable once, or pass backend='torch'."
        ) from exc


def content_hash(folder: Path, *, kind: Kind, int8: bool) -> str:
    """16 hex digits over every file of ``folder`` (names and bytes), the export format
    and the versions of :data:`EXPORT_PACKAGES`.

    Remembered per process for as long as the files' sizes and times are unchanged:
    reading 90 MB of weights again for every encoder built would cost ~0.1 s each.
    """
    files = tuple(sorted(_files(folder)))
    stamps = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    versions = ",".join(f"{package}={_version(package)}" for package in EXPORT_PACKAGES)
    return _hash_files(folder, files, stamps, f"{FORMAT_VERSION}:{kind}:{int8}:{versions}")


def _version(package: str) -> str:
    """``package``'s installed version, read from its metadata (nothing is imported).
    ONNX Runtime also ships as onnxruntime-gpu and others: its module says."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        if package == "onnxruntime":
            import onnxruntime

            return str(onnxruntime.__version__)
        return "none"


def _space_needed(source: Path, *, int8: bool) -> int:
    """Bytes an export writes, about: the fp32 graph holds the weights (the largest
    weights file), int8 adds its quantised copy beside it for a moment."""
    weights = max(
        (p.stat().st_size for p in source.iterdir() if p.suffix in {".safetensors", ".bin"}),
        default=0,
    )
    return int(weights * (1.5 if int8 else 1.0)) + (8 << 20)


@functools.lru_cache(maxsize=64)
def _hash_files(
    folder: Path, files: tuple[Path, ...], stamps: tuple[tuple[str, int, int], ...], salt: str
) -> str:
    del stamps  # part of the cache key only
    digest = hashlib.sha256(salt.encode())
    for path in files:
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _files(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        if path.is_file() and ".cache" not in path.relative_to(folder).parts:
            yield path


def _safe(name: str) -> str:
    """A folder-name-safe, readable form of a model name or path."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name or name).strip("_") or "model"


def _export(name: str, source: Path, scratch: Path, *, kind: Kind, int8: bool) -> bool:
    """Write :data:`EXPORTED_FILES` into ``scratch``; False when the model's shape is not
    one this module exports."""
    from hybrid_retriever.encoders.loading import load_sentence_transformers_model

    if kind == "dense":
        from sentence_transformers import SentenceTransformer as model_class
    else:
        from sentence_transformers import SparseEncoder as model_class  # type: ignore[assignment]
    model = load_sentence_transformers_model(model_class, str(source), kind=kind, device="cpu")
    module, spec = _dense_graph(model) if kind == "dense" else _sparse_graph(model)
    if module is None:
        return False
    _trace(module, model.tokenizer, scratch / MODEL_FILE)
    if int8:
        _quantize(scratch / MODEL_FILE)
    model.tokenizer.backend_tokenizer.save(str(scratch / TOKENIZER_FILE))
    spec.update(
        format=FORMAT_VERSION,
        kind=kind,
        model=name,
        int8=int8,
        max_length=_max_length(model),
        query_prompt=_prompt(model, ("query",)),
        document_prompt=_prompt(model, ("document", "passage", "corpus")),
    )
    (scratch / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return True


def _max_length(model: Any) -> int:
    """The tokens the model reads: sentence-transformers' limit, else the position table's."""
    limit = model.max_seq_length
    if limit is None:
        limit = model[0].auto_model.config.max_position_embeddings
    return int(limit)


def _prompt(model: Any, names: tuple[str, ...]) -> str:
    """The prompt sentence-transformers would prepend for that task ("" for none)."""
    prompts: dict[str, str] = model.prompts
    for name in names:
        if name in prompts:
            return prompts[name]
    default_name = model.default_prompt_name
    return prompts.get(default_name, "") if default_name is not None else ""


def _bert(module: Any, class_name: str) -> bool:
    model_type = getattr(module.config, "model_type", "")
    return type(module).__name__ == class_name and model_type == "bert"


def _dense_graph(model: Any) -> tuple[torch.nn.Module | None, dict[str, Any]]:
    """BERT + mean pooling (+ normalisation) as one module; None for any other shape."""
    import torch
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    modules = list(model)
    if not 2 <= len(modules) <= 3:
        return None, {}
    transformer, pooling, *rest = modules
    if (
        not isinstance(transformer, Transformer)
        or not _bert(transformer.auto_model, "BertModel")
        or not isinstance(pooling, Pooling)
        or pooling.pooling_mode != "mean"
        or not pooling.include_prompt
        or (rest and not isinstance(rest[0], Normalize))
    ):
        return None, {}
    bert, normalize = transformer.auto_model, bool(rest)
    _eager_attention(bert)

    class DenseGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            states = self.bert(**dict(zip(_INPUTS, inputs, strict=True))).last_hidden_state
            mask = inputs[1].unsqueeze(-1).to(states.dtype)
            mean = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1) if normalize else mean

    return DenseGraph().eval(), {"dimension": int(bert.config.hidden_size)}


def _sparse_graph(model: Any) -> tuple[torch.nn.Module | None, dict[str, Any]]:
    """A plain BERT masked-LM + SPLADE max pooling as one module; None otherwise."""
    import torch

    from hybrid_retriever.encoders.masked_lm import masked_lm_split

    split = masked_lm_split(model)
    if split is None:
        return None, {}
    mlm = model[0].auto_model
    _eager_attention(mlm)
    decoder = split.decoder
    twice = split.activation == "log1p_relu"

    class SparseGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mlm = mlm

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            states = self.mlm.bert(**dict(zip(_INPUTS, inputs, strict=True))).last_hidden_state
            states = self.mlm.cls.predictions.transform(states)
            # A padded position takes the first token's state, so its logits repeat a
            # real token's and the maximum over all positions is the maximum over the
            # real ones: a select over [batch, tokens, hidden], not a mask over the
            # [batch, tokens, vocabulary] logits (the largest step after the matrix products).
            real = inputs[1].unsqueeze(-1) != 0
            states = torch.where(real, states, states[:, :1, :])
            pooled = torch.matmul(states, decoder.weight.t()).amax(dim=1)
            if decoder.bias is not None:
                pooled = pooled + decoder.bias
            weights = torch.log1p(torch.relu(pooled))
            return torch.log1p(weights) if twice else weights

    return SparseGraph().eval(), {"max_active_dims": model.max_active_dims}


def _eager_attention(model: Any) -> None:
    """Trace the plain attention (scores, additive mask, softmax), not PyTorch's SDPA
    path: SDPA exports a NaN guard (``IsNaN`` + ``Where`` over every layer's scores)
    that showed in ONNX Runtime's profile of a document batch. The arithmetic is the same."""
    model.set_attn_implementation("eager")


def _trace(module: torch.nn.Module, tokenizer: Any, path: Path) -> None:
    """Trace ``module`` on a padded two-text batch, with batch and length dynamic."""
    import torch

    example = tokenizer(
        ["a short one", "and a somewhat longer text, to have padding"],
        padding=True,
        return_tensors="pt",
    )
    if "token_type_ids" not in example:
        raise InvalidParameterError("The tokenizer gives no token_type_ids; not a BERT model.")
    axes = {"batch": 0, "tokens": 1}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            module,
            tuple(example[key] for key in _INPUTS),
            str(path),
            input_names=list(_INPUTS),
            output_names=["vectors"],
            dynamic_axes={
                **{key: {v: k for k, v in axes.items()} for key in _INPUTS},
                "vectors": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )


def _quantize(path: Path, *, also: tuple[str, ...] = ()) -> None:
    """int8 weights for every matrix product (and the ``also`` operator types), activations
    quantised per call.

    Weights per output channel (a scale per column keeps the small columns' precision),
    symmetric, in [-64, 64] (``reduce_range``): unsigned 8-bit activations times such
    weights cannot overflow the 16-bit pair sums of AVX2's ``vpmaddubsw`` (2 x 255 x 64
    = 32,640), so every integer kernel (AVX2, AVX-512 VNNI, AMX, Arm dot products)
    computes the same exact integer products. Without it (8-bit weights) AVX2 CPUs
    saturate where VNNI ones do not, and the vectors would differ between CPU families.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = path.with_suffix(".int8.onnx")
    with _quiet_quantizer():
        quantize_dynamic(
            str(path),
            str(quantized),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            op_types_to_quantize=["MatMul", *also],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    quantized.replace(path)


class _QuantizerNotes(logging.Filter):
    """Drops what ``onnxruntime.quantization`` logs through the root logger (advice to
    pre-process the graph, which does not apply to a dynamic quantisation of MatMuls)."""

    def filter(self, record: logging.LogRecord) -> bool:
        where = record.pathname.replace(os.sep, "/")
        return not (record.name == "root" and "onnxruntime/quantization" in where)


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """The quantizer's root-logger notes hidden, for this call only.

    ``logging.warning`` configures the root logger (``basicConfig``) when it has no
    handler: a temporary ``NullHandler`` keeps the user's logging set-up untouched.
    """
    root = logging.getLogger()
    placeholder = logging.NullHandler() if not root.handlers else None
    notes = _QuantizerNotes()
    if placeholder is not None:
        root.addHandler(placeholder)
    root.addFilter(notes)
    try:
        yield
    finally:
        root.removeFilter(notes)
        if placeholder is not None:
            root.removeHandler(placeholder)
