"""What machine a measurement ran on, and which runtime ran each encoder, recorded next
to every figure (eval, benchmarks)."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any


def machine_info() -> dict[str, Any]:
    """CPU model, cores, Python, torch and ONNX Runtime versions, torch threads, OS, and
    the runtime encoders get by default here (``default_backend``: ``onnx-int8`` on every
    install with ONNX Runtime; a benchmark that picks its backends names them itself)."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    from hybrid_retriever.encoders.backend import EncoderBackend, resolve_backend
    from hybrid_retriever.encoders.precision import Precision

    try:
        onnxruntime_version: str | None = version("onnxruntime")
    except PackageNotFoundError:
        onnxruntime_version = None

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime_version,
        "default_backend": resolve_backend(
            EncoderBackend.AUTO, device=None, precision=Precision.AUTO
        ).value,
        "platform": platform.platform(),
    }


def encoder_runtime(encoder: Any) -> dict[str, Any]:
    """The model, runtime and precision of one encoder (after it has loaded): the default
    is ONNX Runtime int8, whose vectors are the same on every CPU; PyTorch's are not."""
    backend = getattr(encoder, "backend", None)
    precision = getattr(encoder, "precision", None)
    return {
        "model": getattr(encoder, "name", type(encoder).__name__),
        "backend": getattr(backend, "value", backend),
        "precision": getattr(precision, "value", precision),
    }


def encoder_runtimes(retriever: Any) -> dict[str, dict[str, Any]]:
    """:func:`encoder_runtime` of a retriever's two encoders, by branch."""
    return {
        "dense": encoder_runtime(retriever.dense_encoder),
        "sparse": encoder_runtime(retriever.sparse_encoder),
    }
