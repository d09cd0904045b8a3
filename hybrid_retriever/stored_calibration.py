"""Collections that still carry the removed label-free calibration: say it is not used.

From 26 to 29 November 2026 (before caller ids were stored), the retriever measured
branch weights on each collection after indexing ("known-item calibration") and stored
them with it: on Qdrant Edge in ``<path>/<collection>/hybrid_retriever.json``, elsewhere
in the collection's metadata, under :data:`STORED_KEY`. Searches without weights fused
adaptively with those weights. The calibration was removed because it ranked worse than
equal weights on every real corpus measured (see docs/fusion.md); such a
collection now opens and searches with the default fusion, so its rankings differ from
before. That is right, but must not happen without a word: the first search warns
once, with the arguments that rank as before.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

from hybrid_retriever.errors import StoredCalibrationWarning  # re-exported
from hybrid_retriever.storage.base import StorageBackend

STORED_KEY = "hybrid_retriever.calibration"
"""Where the calibration was stored in a collection's metadata."""
EDGE_METADATA_FILE = "hybrid_retriever.json"
"""Edge has no collection metadata; the calibration was in this file beside the shard's."""


def stored_calibration(storage: StorageBackend, collection: str) -> tuple[dict[str, Any], str]:
    """The calibration record a collection carries (empty if none), and how to remove it."""
    from hybrid_retriever.storage.edge import EdgeStorage
    from hybrid_retriever.storage.qdrant import QdrantClientStorage  # both lazy: heavy

    if isinstance(storage, EdgeStorage):
        path = storage.root / collection / EDGE_METADATA_FILE
        try:
            metadata = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # absent or unreadable: nothing we can use either way
            return {}, ""
        where = f"delete {path}"
    elif isinstance(storage, QdrantClientStorage):
        try:
            info = storage.client.get_collection(collection)
        except Exception:  # any engine error: the collection check that follows reports it
            return {}, ""
        metadata = info.config.metadata or {}
        where = f"remove the key {STORED_KEY!r} from the collection's metadata"
    else:
        return {}, ""
    record = metadata.get(STORED_KEY) if isinstance(metadata, dict) else None
    return (record if isinstance(record, dict) else {}), where


def warn_if_calibrated(storage: StorageBackend, collection: str) -> None:
    """Warn once (per call) when ``collection`` carries calibrated weights."""
    record, where = stored_calibration(storage, collection)
    measured = record.get("calibration")
    weights = measured.get("weights") if isinstance(measured, dict) else None
    if not isinstance(weights, dict):
        return
    try:
        shown = {branch: round(float(weights[branch]), 3) for branch in ("dense", "sparse")}
    except (KeyError, TypeError, ValueError):
        return
    warnings.warn(
        f"Collection {collection!r} carries branch weights {shown} from the label-free "
        f"calibration of November 2026 (measured with {record.get('dense_encoder')!r} and "
        f"{record.get('sparse_encoder')!r}). They are no longer used: searches without "
        "weights use the default fusion, which ranked better on every corpus measured, so "
        "rankings differ from what this collection returned before. To rank as before, "
        f'pass fusion="adaptive", weights={shown}. To silence this, {where}.',
        StoredCalibrationWarning,
        stacklevel=2,
    )
