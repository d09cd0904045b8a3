"""Which runtime runs an encoder's model: PyTorch, or ONNX Runtime in fp32 or int8.

ONNX Runtime runs the model without PyTorch's per-operator dispatch, and its int8
matrix products read a quarter of the weights: one short query encodes in about a
third of PyTorch's time on this project's 2-core machine, and documents about twice
as fast (docs/speed.md, ``benchmarks/query_profile.py``). ``AUTO`` takes int8
wherever ``onnxruntime`` is installed (every install: it is a dependency); PyTorch stays
the fallback.

int8 costs no quality over the whole suite (docs/speed.md: hybrid nDCG@10 per corpus
from -0.002 to +0.011 of fp32's, the mean +0.0025), and it is portable: the weights are
quantised so that no integer kernel can overflow (``onnx_export._quantize``), so every
CPU family computes the same integer products. Measured: bit-identical vectors on an
AMD EPYC (AVX-512 VNNI) and an Intel Xeon with AMX.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING

from hybrid_retriever.encoders.precision import Precision
from hybrid_retriever.errors import InvalidParameterError, ModelLoadError

if TYPE_CHECKING:
    import torch

#: What to tell a user whose explicit ONNX choice cannot be honoured.
INSTALL_HINT = (
    "It is a dependency of hybrid-retriever: reinstall it with `pip install onnxruntime onnx`, "
    "or pass backend='torch'."
)


class EncoderBackend(str, Enum):
    """The runtime an encoder runs its model in."""

    AUTO = "auto"
    """ONNX Runtime in int8 when it is installed and the model can be exported (fp32 if
    ``precision="fp32"`` was asked for); else PyTorch."""
    TORCH = "torch"
    """PyTorch through sentence-transformers, honouring ``precision`` and ``device``."""
    ONNX = "onnx"
    """ONNX Runtime, fp32, on the CPU: the same vectors as PyTorch fp32 up to rounding."""
    ONNX_INT8 = "onnx-int8"
    """ONNX Runtime with int8 weights and activations (dynamic quantisation): the
    default's runtime. Dense cosines to fp32 of 0.99 and over; docs/speed.md has its
    quality over the suite."""


def as_backend(value: EncoderBackend | str) -> EncoderBackend:
    """Accept an ``EncoderBackend`` or its string value ("auto", "torch", "onnx", ...)."""
    try:
        return EncoderBackend(value)
    except ValueError:
        choices = ", ".join(repr(b.value) for b in EncoderBackend)
        raise InvalidParameterError(
            f"backend must be one of {choices} (or an EncoderBackend member), not {value!r}."
        ) from None


@functools.cache
def onnx_runtime_installed() -> bool:
    """Whether ``onnxruntime`` and ``onnx`` can be imported (without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def resolve_backend(
    backend: EncoderBackend, *, device: str | None, precision: Precision
) -> EncoderBackend:
    """The backend ``backend`` means here; explicit ONNX choices that cannot run raise.

    ``AUTO`` keeps PyTorch when the caller asked for something only PyTorch does: a
    device other than the CPU, or bf16; and ONNX Runtime in fp32 when the caller asked
    for fp32.
    """
    if backend is EncoderBackend.TORCH:
        return backend
    wants_torch = (device not in (None, "cpu")) or precision is Precision.BF16
    if backend is EncoderBackend.AUTO:
        if wants_torch or not onnx_runtime_installed():
            return EncoderBackend.TORCH
        return EncoderBackend.ONNX if precision is Precision.FP32 else EncoderBackend.ONNX_INT8
    if not onnx_runtime_installed():
        raise ModelLoadError(f"backend={backend.value!r} needs onnxruntime. {INSTALL_HINT}")
    if device not in (None, "cpu"):
        raise InvalidParameterError(
            f"backend={backend.value!r} runs on the CPU only, but device={device!r} was "
            "given. Pass backend='torch' to use that device."
        )
    if backend is EncoderBackend.ONNX_INT8 and precision is Precision.FP32:
        raise InvalidParameterError(
            "backend='onnx-int8' runs int8, but precision='fp32' was given. Pass "
            "backend='onnx' (or leave backend at 'auto') for fp32."
        )
    if precision is Precision.BF16:
        raise InvalidParameterError(
            f"backend={backend.value!r} does not run bf16 (precision='bf16'). Pass "
            "backend='torch' for bf16, or leave precision at its default."
        )
    return backend


def runtime_label(backend: EncoderBackend, dtype: Callable[[], torch.dtype]) -> str:
    """What runs an encoder, as recorded with a collection: the backend, with the dtype
    under PyTorch (``dtype`` is only called then, since it may load the model)."""
    if backend is EncoderBackend.TORCH:
        return f"torch-{str(dtype()).removeprefix('torch.')}"
    return str(backend.value)
