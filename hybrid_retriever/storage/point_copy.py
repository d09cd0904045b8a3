"""Copying points from one collection into another, batch by batch: the loop that
``add_bm25`` (a copy with a BM25 vector added) and ``move`` (a copy to another engine)
share. Points keep their ids, so running it twice writes nothing twice."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hybrid_retriever.storage.base import StorageBackend, StoredPoint


def copy_points(
    source: StorageBackend,
    source_collection: str,
    target: StorageBackend,
    target_collection: str,
    *,
    batch_size: int,
    start: str | None = None,
    transform: Callable[[list[StoredPoint]], Sequence[StoredPoint]] | None = None,
    after_batch: Callable[[list[StoredPoint]], None] | None = None,
    description: str,
    total: int | None,
    show_progress: bool,
) -> int:
    """Scroll ``source_collection`` from id ``start`` on (all of it when None) and upsert
    each batch, through ``transform`` when given, into ``target_collection``; call
    ``after_batch`` with the source's points once a batch is written (a checkpoint).
    Return the number of points written."""
    from tqdm.auto import tqdm

    written = 0
    progress = tqdm(total=total, unit="doc", desc=description, delay=2.0, disable=not show_progress)
    with progress as bar:
        for points in source.scroll_points(source_collection, batch_size=batch_size, start=start):
            if not points:
                continue
            target.upsert(target_collection, transform(points) if transform else points)
            written += len(points)
            if after_batch is not None:
                after_batch(points)
            bar.update(len(points))
    return written
