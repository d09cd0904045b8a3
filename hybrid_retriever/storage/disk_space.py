"""Free disk space, checked before an engine writes, and disk-full errors made readable.

Why a check *before* the write: Qdrant Edge writes through memory-mapped sparse files
(its WAL segments, vector chunks and payload pages are created at full size with no
blocks behind them). On a full disk the kernel answers a store into such a page with
SIGBUS, which kills the whole process (a web server, a notebook kernel) before any
Python code can catch anything. So the only safe answer is to refuse a write the disk
cannot hold, while everything written before is still intact.

The estimates are deliberately generous: measured on Edge 0.9, an upsert allocates
about 2.1 times the raw bytes of its vectors and payloads (the WAL record plus the
segment copy), and ``optimize`` grows the segments by about 1.4 times their size
while it builds the indexes. Another process filling the same disk between the check
and the write can still win the race; the check makes a full disk an error, not a
guarantee against every neighbour.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybrid_retriever.errors import StorageError
from hybrid_retriever.vectors import SparseVector

if TYPE_CHECKING:
    from hybrid_retriever.storage.base import Vector

WAL_SEGMENT_BYTES = 32 * 1024 * 1024
"""Size of one Qdrant Edge WAL segment (``wal/open-N``), which Edge maps as it fills."""

SAFETY_MARGIN_BYTES = WAL_SEGMENT_BYTES
"""Free space kept in reserve beyond each estimate: room for a new WAL segment's pages,
page rounding in every mapped file, and the engine's small bookkeeping files."""

UPSERT_GROWTH = 3
"""Bytes on disk per raw byte written (measured 2.1; rounded up)."""

OPTIMIZE_GROWTH = 2
"""Bytes the index build may add per byte of existing segments (measured 1.4; rounded up)."""


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still use on ``folder``'s file system."""
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    stats = os.statvfs(probe)
    return stats.f_bavail * stats.f_frsize


def allocated_bytes(folder: Path) -> int:
    """Disk blocks really held by the files under ``folder`` (sparse files count what
    they hold, not their length)."""
    total = 0
    for directory, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except FileNotFoundError:  # removed by the engine while we walked
                continue
    return total


def raw_point_bytes(vectors: Iterable[Vector], payload: Any) -> int:
    """The raw size of one point: 4 bytes a dense value, 8 a sparse entry, its JSON payload."""
    size = len(json.dumps(payload, default=str, ensure_ascii=False).encode("utf-8"))
    for vector in vectors:
        size += 8 * len(vector.indices) if isinstance(vector, SparseVector) else 4 * len(vector)
    return size


def require_free_space(folder: Path, needed: int, *, action: str) -> None:
    """Raise ``StorageError`` unless ``folder``'s disk has ``needed`` bytes free."""
    free = free_bytes(folder)
    if free < needed:
        raise StorageError(
            f"Not enough free disk space to {action} in {str(folder)!r}: it needs "
            f"{needed:,} bytes ({_mib(needed)}) and {free:,} bytes ({_mib(free)}) are free. "
            f"{_FIX} Nothing was written; the data stored before is intact."
        )


def is_disk_full(exc: BaseException) -> bool:
    """True for an engine failure that means the disk (or a quota) is full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    message = str(exc).lower()
    return any(sign in message for sign in _DISK_FULL_SIGNS)


def disk_full_error(where: str, exc: BaseException) -> StorageError:
    """The package's error for a write the disk could not hold."""
    return StorageError(
        f"The disk holding {where} is full: {exc}. {_FIX} The write that failed was not "
        "acknowledged; retry it once there is space (writes by id replace, never duplicate)."
    )


_FIX = "Free space on that disk, or move the data to a larger disk (path=...)."

_DISK_FULL_SIGNS = (
    "no space left on device",
    "database or disk is full",
    "disk quota exceeded",
    "os error 28",
    "os error 122",
)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
