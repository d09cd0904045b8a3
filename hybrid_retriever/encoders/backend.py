"""Which runtime runs an encoder's model: PyTorch, or ONNX Runtime.

ONNX Runtime runs the same fp32 arithmetic as PyTorch without its per-operator
dispatch, which is most of the cost of one short query on a small model: several
times faster per query on this project's 2-core machine (README "Speed",
``benchmarks/query_profile.py``). ``AUTO`` takes it wherever it is installed
(``pip install 'hybrid-retriever[onnx]'``); PyTorch stays the fallback.

int8 is opt-in only (``ONNX_INT8``): its integer kernels differ between CPU
families (VNNI, AVX2, ARM dot products), so the vectors would too.
"""

from __future__ import annotations

import functools
import importlib.util
from enum import Enum

from hybrid_retriever.encoders.precision import Precision
from hybrid_retriever.errors import InvalidParameterError, ModelLoadError

#: What to tell a user whose explicit ONNX choice cannot be honoured.
INSTALL_HINT = "Install it with `pip install 'hybrid-retriever[onnx]'`, or pass backend='torch'."


class EncoderBackend(str, Enum):
    """The runtime an encoder runs its model in."""

    AUTO = "auto"
    """ONNX Runtime (fp32) when it is installed and the model can be exported; else PyTorch."""
    TORCH = "torch"
    """PyTorch through sentence-transformers, honouring ``precision`` and ``device``."""
    ONNX = "onnx"
    """ONNX Runtime, fp32, on the CPU: the same vectors as PyTorch fp32 up to rounding."""
    ONNX_INT8 = "onnx-int8"
    """ONNX Runtime with int8 weights (dynamic quantisation): faster, slightly different
    vectors, and not the same on every CPU family. Opt-in; README "Speed" has its quality."""


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
    device other than the CPU, or bf16.
    """
    if backend is EncoderBackend.TORCH:
        return backend
    wants_torch = (device not in (None, "cpu")) or precision is Precision.BF16
    if backend is EncoderBackend.AUTO:
        if wants_torch or not onnx_runtime_installed():
            return EncoderBackend.TORCH
        return EncoderBackend.ONNX
    if not onnx_runtime_installed():
        raise ModelLoadError(f"backend={backend.value!r} needs onnxruntime. {INSTALL_HINT}")
    if device not in (None, "cpu"):
        raise InvalidParameterError(
            f"backend={backend.value!r} runs on the CPU only, but device={device!r} was "
            "given. Pass backend='torch' to use that device."
        )
    if precision is Precision.BF16:
        raise InvalidParameterError(
            f"backend={backend.value!r} does not run bf16 (precision='bf16'). Pass "
            "backend='torch' for bf16, or leave precision at its default."
        )
    return backend
