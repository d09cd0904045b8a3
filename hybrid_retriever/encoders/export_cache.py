"""The ONNX export cache: where exports live, how a cached export proves it is whole,
and what happens when the cache cannot be written.

An export is written into a scratch folder and renamed into place whole; its last
file, ``manifest.json``, records what the export is (format, kind, int8, and the key
over the model's files and the exporting packages) and each file's size and SHA-256.
A folder is used only when all of them match, so a folder that is half-written,
truncated, corrupted at the same size, missing a file, or made for something else is
exported again instead of run (and its vectors silently wrong). Checking costs one
SHA-256 pass over the files, once per process and folder (1.3 GB/s with SHA
instructions; measured on the project's busy 2-core machine: 24 ms for splade-tiny's
21 MB int8 model, 63 ms for all-MiniLM-L6-v2's 59 MB); it is redone only if a file's
size, time or inode changes.

Exports into one cache folder take turns through ``.lock`` (``flock``), held while
exporting. Whoever holds it alone removes the scratch folders that killed exports left
behind: a live export holds the lock, so its scratch is never touched.

A cache that cannot be written (read-only, full, not permitted), or that holds a damaged
export that cannot be removed, does not stop the encoder: the export goes to a private
temporary folder of this process, removed at exit, with one :class:`ModelCacheWarning`
naming the folder, the reason and the fix.
"""

from __future__ import annotations

import atexit
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from hybrid_retriever.errors import ModelCacheWarning, ModelLoadError

#: Environment variable naming the cache folder (the ``onnx_cache_dir`` keyword wins).
CACHE_ENV = "HYBRID_RETRIEVER_ONNX_CACHE"

#: Written last into each export: its identity and every file's size and digest.
MANIFEST_FILE = "manifest.json"

#: Held (``flock``) while exporting into the cache folder.
LOCK_FILE = ".lock"

#: Exports in progress, and damaged exports being removed.
SCRATCH_PREFIX = ".scratch-"
STALE_PREFIX = ".stale-"

#: Scratch folders of versions before the manifest: ``.<export>-<mkdtemp suffix>``.
_LEGACY_SCRATCH = re.compile(r"^\..+-(dense|sparse)(-int8)?-[0-9a-f]{16}-[a-z0-9_]{8}$")

#: Without ``flock`` (Windows) a scratch folder is taken for dead after this long.
_UNLOCKED_SCRATCH_AGE_S = 24 * 3600

_UNWRITABLE = frozenset(
    code
    for code in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)
    if code is not None
)

#: One export at a time per process: loading models and tracing them share global state
#: in transformers and torch (the retriever's first query loads both encoders at once).
_EXPORT_LOCK = threading.Lock()

#: Folder -> the files' (name, size, mtime, inode) when their digests last matched.
_VERIFIED: dict[Path, tuple[tuple[str, int, int, int], ...]] = {}

#: Cache folder -> the private folder this process exports into instead.
_FALLBACKS: dict[Path, Path] = {}


class CacheUnwritable(Exception):
    """Internal: ``root`` cannot take an export, for ``reason``."""

    def __init__(self, root: Path, reason: str) -> None:
        super().__init__(f"{root}: {reason}")
        self.root = root
        self.reason = reason


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where exports live: ``cache_dir``, else ``$HYBRID_RETRIEVER_ONNX_CACHE``, else the
    user's cache folder (``~/.cache/hybrid_retriever/onnx`` on Linux)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from_env = os.environ.get(CACHE_ENV)
    if from_env:
        return Path(from_env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("hybrid_retriever")) / "onnx"


def cached_export(
    root: Path,
    name: str,
    identity: Mapping[str, Any],
    *,
    files: tuple[str, ...],
    space_needed: int,
    write: Callable[[Path], bool],
) -> Path | None:
    """The folder ``root / name`` holding the export ``identity`` describes, checked whole.

    When it is absent or damaged, ``write(scratch)`` makes ``files`` in an empty scratch
    folder (False: nothing to export, and None is returned), then the manifest is added
    and the folder renamed into place. ``space_needed`` (bytes) is checked first, so that
    a full disk is found before the export's minutes of work.
    """
    folder = root / name
    found = problem(folder, identity, files)
    if found is None:
        _remove_leftovers_if_idle(root)
        return folder
    with _EXPORT_LOCK:
        if root not in _FALLBACKS:
            try:
                return _export_into(root, name, identity, files, space_needed, write)
            except CacheUnwritable as exc:
                if found != "absent":
                    exc = CacheUnwritable(
                        root,
                        f"the export {folder} is damaged ({found}) and cannot be replaced "
                        f"({exc.reason}); delete that folder",
                    )
                _FALLBACKS[root] = _fallback_for(exc, space_needed)
        try:
            return _export_into(_FALLBACKS[root], name, identity, files, space_needed, write)
        except CacheUnwritable as exc:
            raise ModelLoadError(
                f"Could not export the model to ONNX: the cache folder {root} cannot be used "
                f"(see the warning before), and neither can the temporary folder {exc.root} "
                f"({exc.reason}). Point ${CACHE_ENV} (or "
                f"onnx_cache_dir=) at a writable folder with {space_needed / 1e6:,.0f} MB "
                "free, or pass backend='torch'."
            ) from exc


def problem(folder: Path, identity: Mapping[str, Any], files: tuple[str, ...]) -> str | None:
    """Why ``folder`` is not a whole export of ``identity``; None when it is."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        recorded = {
            str(file): (int(entry["size"]), str(entry["sha256"]))
            for file, entry in manifest["files"].items()
        }
        made_for = manifest["identity"]
    except FileNotFoundError:
        if not os.path.lexists(folder):
            return "absent"
        return (
            f"it has no {MANIFEST_FILE} (an export that never finished, or a folder not "
            "written by hybrid_retriever)"
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"its {MANIFEST_FILE} cannot be read ({type(exc).__name__}: {exc})"
    if made_for != dict(identity):
        return f"it holds another export ({made_for!r}, not {dict(identity)!r})"
    if set(recorded) != set(files):
        return f"its {MANIFEST_FILE} lists {sorted(recorded)}, not {sorted(files)}"
    stamps = []
    for file in sorted(recorded):
        try:
            stat = (folder / file).stat()
        except OSError:
            return f"{file} is missing"
        size = recorded[file][0]
        if stat.st_size != size:
            return f"{file} has {stat.st_size:,} bytes, not the {size:,} exported (truncated?)"
        stamps.append((file, stat.st_size, stat.st_mtime_ns, stat.st_ino))
    if _VERIFIED.get(folder) == tuple(stamps):
        return None
    for file in sorted(recorded):
        try:
            with (folder / file).open("rb") as handle:
                digest = _sha256(handle)
        except OSError as exc:
            return f"{file} cannot be read ({exc})"
        if digest != recorded[file][1]:
            return f"{file}'s bytes differ from those exported (corrupted)"
    _VERIFIED[folder] = tuple(stamps)
    return None


def read_checked(folder: Path, file: str) -> bytes:
    """``folder / file``'s bytes, checked against the manifest: what is run is what was
    exported, even if the file changed after the folder was checked. Hashed again only
    when the file is not the one :func:`problem` hashed (its size, time or inode differ)."""
    with (folder / file).open("rb") as handle:
        stat = os.fstat(handle.fileno())
        data = handle.read()
    stamp = (file, stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if stamp in _VERIFIED.get(folder, ()) and len(data) == stat.st_size:
        return data
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    if hashlib.sha256(data).hexdigest() != manifest["files"][file]["sha256"]:
        raise ModelLoadError(
            f"{folder / file} changed after it was checked (its bytes differ from those "
            f"exported). Delete the folder {folder}; it is exported again on next use."
        )
    return data


def _export_into(
    root: Path,
    name: str,
    identity: Mapping[str, Any],
    files: tuple[str, ...],
    space_needed: int,
    write: Callable[[Path], bool],
) -> Path | None:
    folder = root / name
    with _locked(root):
        _remove_leftovers(root)
        found = problem(folder, identity, files)
        if found is None:
            return folder
        if found != "absent":
            _set_aside(root, folder, found)
        free = _free_bytes(root)
        if free is not None and free < space_needed:
            raise CacheUnwritable(
                root,
                f"it has {free / 1e6:,.0f} MB free and the export needs about "
                f"{space_needed / 1e6:,.0f} MB",
            )
        scratch: Path | None = None
        try:
            scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{name}-", dir=root))
            if not write(scratch):
                return None
            _write_manifest(scratch, identity, files)
            os.rename(scratch, folder)
            scratch = None
            _fsync_folder(root)
        except OSError as exc:
            if exc.errno in _UNWRITABLE:
                raise CacheUnwritable(root, _why(exc)) from exc
            # Without flock (Windows) another process may have renamed its copy first.
            if problem(folder, identity, files) is not None:
                raise
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _set_aside(root: Path, folder: Path, found: str) -> None:
    """Move the damaged ``folder`` out of the way (one rename), then delete it."""
    try:
        stale = Path(tempfile.mkdtemp(prefix=f"{STALE_PREFIX}{folder.name}-", dir=root))
        os.rename(folder, stale / folder.name)
    except OSError as exc:
        raise CacheUnwritable(root, _why(exc)) from exc
    warnings.warn(
        f"The ONNX export {folder} was damaged ({found}); it is exported again.",
        ModelCacheWarning,
        stacklevel=5,
    )
    shutil.rmtree(stale, ignore_errors=True)


def _fallback_for(exc: CacheUnwritable, space_needed: int) -> Path:
    """The private folder this process exports into instead of ``exc.root``; warns once."""
    try:
        private = _private_folder()
    except OSError as error:
        raise ModelLoadError(
            f"Could not export the model to ONNX: the cache folder {exc.root} cannot be used "
            f"({exc.reason}), and no temporary folder can be made ({error}). Point "
            f"${CACHE_ENV} (or onnx_cache_dir=) at a writable folder with "
            f"{space_needed / 1e6:,.0f} MB free, or pass backend='torch'."
        ) from error
    warnings.warn(
        f"The ONNX export cache {exc.root} cannot be used: {exc.reason}. This process "
        f"exports into the temporary folder {private} instead, removed at exit, so each "
        f"new process exports again (seconds to a minute per model). To fix it, make "
        f"{exc.root} writable with room to spare, or point ${CACHE_ENV} (or onnx_cache_dir=) "
        "at a writable folder.",
        ModelCacheWarning,
        stacklevel=5,
    )
    return private


_PRIVATE: list[Path] = []


def _private_folder() -> Path:
    """This process's own temporary cache (made once, removed at exit)."""
    if not _PRIVATE:
        folder = Path(tempfile.mkdtemp(prefix="hybrid_retriever-onnx-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _PRIVATE.append(folder)
    return _PRIVATE[0]


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold ``root``'s export lock (waits for another process's export to end)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise CacheUnwritable(root, _why(exc)) from exc
    try:
        if fcntl is not None:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _remove_leftovers(root: Path) -> None:
    """Delete what killed exports left (called holding the lock: no export is live)."""
    for entry in _leftovers(root):
        shutil.rmtree(entry, ignore_errors=True)


def _remove_leftovers_if_idle(root: Path) -> None:
    """On a cache hit: delete leftovers if any, when no export runs (cheap otherwise)."""
    if not _leftovers(root):
        return
    try:
        descriptor = os.open(root / LOCK_FILE, os.O_RDWR)
    except OSError:
        return  # a read-only cache: leave them
    try:
        if fcntl is not None:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _remove_leftovers(root)
    except OSError:
        return  # an export is running; the next one cleans up
    finally:
        os.close(descriptor)


def _leftovers(root: Path) -> list[Path]:
    """Scratch and set-aside folders in ``root`` that no live export of ours can own."""
    found = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    for entry in entries:
        ours = entry.name.startswith((SCRATCH_PREFIX, STALE_PREFIX))
        legacy = not ours and _LEGACY_SCRATCH.match(entry.name) is not None
        if not (ours or legacy) or not entry.is_dir(follow_symlinks=False):
            continue
        # Older versions (legacy names) take no lock, and without flock nothing does:
        # only age tells those exports' scratch folders from live ones.
        if (legacy or fcntl is None) and _age_s(entry) < _UNLOCKED_SCRATCH_AGE_S:
            continue
        found.append(Path(entry.path))
    return found


def _age_s(entry: os.DirEntry[str]) -> float:
    try:
        return time.time() - entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return 0.0


def _free_bytes(root: Path) -> int | None:
    try:
        return shutil.disk_usage(root).free
    except OSError:
        return None


def _write_manifest(scratch: Path, identity: Mapping[str, Any], files: tuple[str, ...]) -> None:
    """Each file's size and digest, flushed to disk with the files, then the manifest."""
    entries = {}
    for file in files:
        with (scratch / file).open("r+b") as handle:
            digest = _sha256(handle)
            os.fsync(handle.fileno())
            entries[file] = {"size": os.fstat(handle.fileno()).st_size, "sha256": digest}
    manifest = {"identity": dict(identity), "files": entries}
    with (scratch / MANIFEST_FILE).open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_folder(scratch)


def _fsync_folder(folder: Path) -> None:
    """Make a rename or new file in ``folder`` durable (POSIX; a no-op elsewhere)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _sha256(handle: BinaryIO) -> str:
    """The file's SHA-256 (``hashlib.file_digest`` is Python 3.11+)."""
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _why(exc: OSError) -> str:
    return f"{type(exc).__name__}: {exc}"
