"""Storage faults: a full disk and a folder shared by both engines.

A full disk must give ``StorageError`` and leave the process alive, with every write
acknowledged before it still searchable. Qdrant Edge writes through memory-mapped
sparse files, so before the fix a full disk killed the process with SIGBUS: every write
that can fill the disk therefore runs in a subprocess (this file, run as a script), so
a crash fails the test instead of killing pytest. The disk is a small tmpfs, which
needs root (CI runs as root); elsewhere those tests are skipped.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hybrid_retriever.collection import CollectionSpec, Distance
from hybrid_retriever.errors import StorageError
from hybrid_retriever.storage import disk_space
from hybrid_retriever.storage.base import BranchQuery, StorageBackend, StoredPoint
from hybrid_retriever.storage.connect import open_storage
from hybrid_retriever.vectors import SparseVector

REPO_ROOT = Path(__file__).resolve().parents[1]
COLLECTION = "faults"
DIMENSIONS = 384
BATCH = 500
MAX_BATCHES = 400
"""A fill that has not met a full disk after this many batches is a broken test setup."""

SPEC = CollectionSpec(COLLECTION, "dense", DIMENSIONS, Distance.COSINE, "sparse")


# -- points: fake but valid vectors, each point the nearest neighbour of its own vector ----


def point_id(number: int) -> str:
    return str(uuid.UUID(int=number + 1))


def dense_vector(number: int) -> list[float]:
    return [math.sin(number * 0.618 + 1.7 * j) for j in range(DIMENSIONS)]


def point(number: int) -> StoredPoint:
    return StoredPoint(
        id=point_id(number),
        vectors={
            "dense": dense_vector(number),
            "sparse": SparseVector(indices=[number % 997, 1000 + number % 7], values=[1.0, 0.5]),
        },
        payload={"page_content": f"point {number} " + "text " * 60, "metadata": {"n": number}},
    )


def nearest(storage: StorageBackend, number: int) -> str:
    query = BranchQuery(vector_name="dense", vector=dense_vector(number), limit=1)
    (hits,) = storage.search(COLLECTION, [query], None)
    return hits[0].id


# -- the subprocess side ---------------------------------------------------------------------


def worker(command: str, path: str, engine: str) -> None:
    """Run one storage step and report on stdout, one JSON line per event.

    ``fill``: create the collection and write batches until the storage refuses, printing
    each acknowledged batch. ``open``: reopen and search. ``steps``: write, fill the disk
    with a ballast file, then try every kind of write and a search. A ``StorageError`` is printed
    and the process exits 0: the error is the expected outcome, the exit code proves the
    process survived it.
    """
    storage = None
    try:
        storage = open_storage(path=path, engine=engine, collection=COLLECTION)
        if command == "fill":
            if storage.get_layout(COLLECTION) is None:
                storage.create_collection(SPEC)
            for batch in range(MAX_BATCHES):
                numbers = range(batch * BATCH, (batch + 1) * BATCH)
                storage.upsert(COLLECTION, [point(n) for n in numbers])
                _report(acknowledged=numbers.stop)
        elif command == "steps":
            storage.create_collection(SPEC)
            storage.upsert(COLLECTION, [point(n) for n in range(300)])
            fill_up(Path(path).parent)
            _try_every_write(storage)
            _report(nearest_to_7=nearest(storage, 7))
        else:
            _report(count=storage.count(COLLECTION), nearest_to_0=nearest(storage, 0))
    except StorageError as exc:
        _report(storage_error=str(exc))
    finally:
        if storage is not None:
            try:
                storage.close()
            except StorageError as exc:
                _report(storage_error_on_close=str(exc))


def _try_every_write(storage: StorageBackend) -> None:
    steps: dict[str, Callable[[], None]] = {
        "create_collection": lambda: storage.create_collection(
            CollectionSpec("second", "dense", DIMENSIONS, Distance.COSINE, "sparse")
        ),
        "upsert": lambda: storage.upsert(COLLECTION, [point(n) for n in range(300, 400)]),
        "delete": lambda: storage.delete(COLLECTION, [point_id(n) for n in range(10)]),
        "optimize": lambda: storage.optimize(COLLECTION),
    }
    for name, step in steps.items():
        try:
            step()
            _report(step=name, outcome="done")
        except StorageError as exc:
            _report(step=name, outcome="StorageError", message=str(exc))


def _report(**event: Any) -> None:
    print(json.dumps(event), flush=True)


def run_worker(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    completed = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path])},
        timeout=600,
        check=False,
    )
    events = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    return completed.returncode, events, completed.stderr[-3000:]


# -- a small disk ------------------------------------------------------------------------------


def _mount_tmpfs(folder: Path, size_mib: int, *, remount: bool = False) -> None:
    options = f"{'remount,' if remount else ''}size={size_mib}m"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``small_disk(size_mib)``: a fresh tmpfs of that size; unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size_mib: int) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs to fill needs root (CI runs as root)")
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        try:
            _mount_tmpfs(folder, size_mib)
        except (OSError, subprocess.CalledProcessError) as exc:
            pytest.skip(f"cannot mount a tmpfs here ({exc}); the disk-full tests need one")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        if subprocess.run(["umount", str(folder)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_up(disk: Path) -> Path:
    """Take every free byte of ``disk`` with a ballast file (a plain write: ENOSPC, no crash)."""
    ballast = disk / "ballast"
    with ballast.open("wb", buffering=0) as out:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    assert shutil.disk_usage(disk).free < 4096
    return ballast


def grow(disk: Path) -> None:
    """Free space: give the tmpfs room, as deleting files or a bigger disk would."""
    _mount_tmpfs(disk, 512, remount=True)


def assert_refused_in_time(returncode: int, events: list[dict[str, Any]], stderr: str) -> str:
    """The process lived (exit 0, not SIGBUS = -7) and reported a StorageError; its message."""
    assert returncode == 0, f"the process died (exit {returncode}):\n{stderr}"
    errors = [e["storage_error"] for e in events if "storage_error" in e]
    assert errors, f"no StorageError was reported: {events[-3:]}\n{stderr}"
    return str(errors[0])


# -- disk full ------------------------------------------------------------------------------


def test_the_free_space_check_names_the_folder_the_sizes_and_the_fix(tmp_path: Path) -> None:
    """The check itself, on any machine (no tmpfs): refuse exactly when space is short."""
    free = disk_space.free_bytes(tmp_path)
    disk_space.require_free_space(tmp_path, free // 2, action="write 1 point")
    with pytest.raises(StorageError) as refused:
        disk_space.require_free_space(tmp_path, free + (1 << 30), action="write 3 points")
    message = str(refused.value)
    assert str(tmp_path) in message and "write 3 points" in message
    assert f"{free + (1 << 30):,} bytes" in message and "are free" in message
    assert "Free space on that disk" in message and "intact" in message
    # A folder not created yet is measured on the disk that will hold it.
    assert disk_space.free_bytes(tmp_path / "not" / "yet") > 0


@pytest.mark.parametrize(
    ("failure", "full"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (sqlite3.OperationalError("database or disk is full"), True),
        (Exception("Service internal error: No space left on device (os error 28)"), True),
        (sqlite3.OperationalError("database is locked"), False),
        (OSError(errno.EACCES, "Permission denied"), False),
    ],
)
def test_disk_full_failures_are_recognised(failure: Exception, full: bool) -> None:
    assert disk_space.is_disk_full(failure) is full


@pytest.mark.parametrize(("engine", "size_mib"), [("edge", 56), ("qdrant-client", 24)])
def test_filling_the_disk_is_a_storage_error_and_keeps_every_acknowledged_write(
    small_disk: Callable[[int], Path], engine: str, size_mib: int
) -> None:
    disk = small_disk(size_mib)
    data = disk / "data"

    returncode, events, stderr = run_worker("fill", str(data), engine)

    message = assert_refused_in_time(returncode, events, stderr)
    assert str(data) in message and "disk" in message and "Free space" in message
    if engine == "edge":  # checked before writing: the folder, both sizes and the fix
        assert "needs" in message and "are free" in message
    acknowledged = max(e.get("acknowledged", 0) for e in events)
    assert acknowledged >= BATCH, "the disk filled before one batch: the test proves nothing"

    grow(disk)
    storage = open_storage(path=data, engine=engine, collection=COLLECTION)
    try:
        ids = [point_id(n) for n in range(acknowledged)]
        assert {p.id for p in storage.retrieve(COLLECTION, ids)} == set(ids)
        for number in (0, acknowledged // 2, acknowledged - 1):
            assert nearest(storage, number) == point_id(number)
        storage.upsert(COLLECTION, [point(acknowledged)])  # writable again once there is room
        assert nearest(storage, acknowledged) == point_id(acknowledged)
    finally:
        storage.close()


@pytest.mark.parametrize("engine", ["edge", "qdrant-client"])
def test_opening_on_a_full_disk_is_a_storage_error_or_works(
    small_disk: Callable[[int], Path], engine: str
) -> None:
    disk = small_disk(48)
    data = disk / "data"
    storage = open_storage(path=data, engine=engine, collection=COLLECTION)
    storage.create_collection(SPEC)
    storage.upsert(COLLECTION, [point(n) for n in range(200)])
    storage.close()
    ballast = fill_up(disk)

    returncode, events, stderr = run_worker("open", str(data), engine)

    assert returncode == 0, (
        f"opening on a full disk killed the process (exit {returncode}):\n{stderr}"
    )
    opened = [e for e in events if "count" in e]
    if engine == "edge":  # Edge replays its log into mapped files on open: refused in time
        message = assert_refused_in_time(returncode, events, stderr)
        assert str(data / COLLECTION) in message and "are free" in message
    else:  # qdrant-client reads its SQLite file; nothing to refuse
        assert opened == [{"count": 200, "nearest_to_0": point_id(0)}]
    ballast.unlink()
    storage = open_storage(path=data, engine=engine, collection=COLLECTION)
    try:
        assert storage.count(COLLECTION) == 200
        assert nearest(storage, 199) == point_id(199)
    finally:
        storage.close()


def test_every_edge_write_on_a_full_disk_is_refused_before_it_starts(
    small_disk: Callable[[int], Path],
) -> None:
    """create_collection, upsert, delete and optimize each map or grow Edge's files."""
    disk = small_disk(48)
    data = disk / "data"

    returncode, events, stderr = run_worker("steps", str(data), "edge")

    assert returncode == 0, (
        f"a write on a full disk killed the process (exit {returncode}):\n{stderr}"
    )
    outcomes = {e["step"]: e["outcome"] for e in events if "step" in e}
    assert outcomes == dict.fromkeys(
        ["create_collection", "upsert", "delete", "optimize"], "StorageError"
    ), events
    for event in events:
        if "step" in event:
            assert str(data) in event["message"] and "are free" in event["message"], event
    assert {"nearest_to_7": point_id(7)} in events  # reading still works on a full disk
    (disk / "ballast").unlink()
    grow(disk)
    storage = open_storage(path=data, engine="edge", collection=COLLECTION)
    try:
        assert storage.count(COLLECTION) == 300
        assert storage.get_layout("second") is None
        assert nearest(storage, 0) == point_id(0)  # the refused delete removed nothing
    finally:
        storage.close()


ADD_ON_A_FULL_DISK = """
import sys
from hybrid_retriever import HybridRetriever, StorageError
retriever = HybridRetriever(collection_name="demo", path=sys.argv[1])
try:
    retriever.add_texts(["Written when the disk is full."], show_progress=False)
    print("WRITTEN")
except StorageError as exc:
    print("STORAGE ERROR:", exc)
"""


def test_the_retriever_survives_a_full_disk_and_keeps_its_documents(
    small_disk: Callable[[int], Path], make_retriever: Any, documents: list[Any]
) -> None:
    """Real models, the default engine: writing on a full disk is an error, not a crash."""
    disk = small_disk(64)
    data = str(disk / "data")
    retriever = make_retriever(collection_name="demo", path=data)
    retriever.add_documents(documents, show_progress=False)
    before = [d.page_content for d in retriever.invoke("how are vectors stored?", k=3)]
    retriever.close()
    ballast = fill_up(disk)

    completed = subprocess.run(
        [sys.executable, "-c", ADD_ON_A_FULL_DISK, data],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path])},
        timeout=600,
        check=False,
    )

    assert completed.returncode == 0, f"exit {completed.returncode}:\n{completed.stderr[-3000:]}"
    assert completed.stdout.startswith("STORAGE ERROR:"), completed.stdout + completed.stderr
    assert data in completed.stdout
    ballast.unlink()
    grow(disk)
    reopened = make_retriever(collection_name="demo", path=data)
    assert reopened.count() == len(documents)
    assert [d.page_content for d in reopened.invoke("how are vectors stored?", k=3)] == before


# -- engine detection per collection ----------------------------------------------------------


def _create(path: Path, engine: str, name: str) -> None:
    storage = open_storage(path=path, engine=engine)
    storage.create_collection(CollectionSpec(name, "dense", DIMENSIONS, Distance.COSINE, "sparse"))
    storage.upsert(name, [point(0)])
    storage.close()


def test_a_qdrant_client_collection_does_not_hide_the_edge_ones_beside_it(
    make_retriever: Any, documents: list[Any], tmp_path: Path
) -> None:
    edge = make_retriever(collection_name="notes", path=str(tmp_path))
    edge.add_documents(documents, show_progress=False)
    before = [d.page_content for d in edge.invoke("what is SPLADE?", k=3)]
    edge.close()
    other = make_retriever(collection_name="other", path=str(tmp_path), engine="qdrant-client")
    other.add_documents(documents[:3], show_progress=False)
    other.close()

    reopened = make_retriever(collection_name="notes", path=str(tmp_path))
    assert type(reopened.storage).__name__ == "EdgeStorage"
    assert [d.page_content for d in reopened.invoke("what is SPLADE?", k=3)] == before
    again = make_retriever(collection_name="other", path=str(tmp_path))
    assert type(again.storage).__name__ == "QdrantClientStorage"
    assert again.count() == 3


def test_a_collection_name_both_engines_hold_is_refused(
    make_retriever: Any, tmp_path: Path
) -> None:
    _create(tmp_path, "edge", "notes")
    _create(tmp_path, "qdrant-client", "notes")
    with pytest.raises(
        StorageError, match=r"both engines.*engine='edge' or engine='qdrant-client'"
    ):
        make_retriever(collection_name="notes", path=str(tmp_path))
    chosen = make_retriever(collection_name="notes", path=str(tmp_path), engine="edge")
    assert chosen.count() == 1


def test_a_new_collection_goes_to_the_folders_engine(tmp_path: Path) -> None:
    """A folder of qdrant-client collections only stays qdrant-client (existing data keeps
    working); a folder that holds Edge collections gets Edge, the default."""
    client_only, mixed = tmp_path / "client", tmp_path / "mixed"
    _create(client_only, "qdrant-client", "old")
    _create(mixed, "edge", "a")
    _create(mixed, "qdrant-client", "b")
    for path, expected in [(client_only, "QdrantClientStorage"), (mixed, "EdgeStorage")]:
        storage = open_storage(path=path, collection="new")
        assert type(storage).__name__ == expected, path
        storage.close()


if __name__ == "__main__":
    worker(*sys.argv[1:])
