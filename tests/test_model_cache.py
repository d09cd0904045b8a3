"""The ONNX export cache checks itself: a damaged export is never run but exported again,
a cache folder that cannot be written is worked around with one warning, scratch folders
of killed exports are removed, and the key follows the packages that make the export.

Every test works in its own cache folder (copies of one export made for the module), so
the user's cache is never touched.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hybrid_retriever import SparseVector, SpladeEncoder
from hybrid_retriever.encoders import onnx_export

pytest.importorskip("onnxruntime")

#: splade-tiny in fp32: its export takes about a second once torch is loaded.
MODEL = "splade-tiny"
QUERY = "insulin resistance and bread yeast"
DOCUMENTS = ["Yeast makes bread rise.", "Insulin resistance precedes type 2 diabetes."]


def encode(cache: Path) -> list[SparseVector]:
    encoder = SpladeEncoder(MODEL, backend="onnx", onnx_cache_dir=cache)
    return [encoder.encode_query(QUERY), *encoder.encode_documents(DOCUMENTS)]


def exports(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if not p.name.startswith("."))


def leftovers(cache: Path) -> list[str]:
    """Hidden entries other than the lock file: scratch folders, set-aside exports."""
    return sorted(p.name for p in cache.iterdir() if p.name.startswith(".") and p.name != ".lock")


def cache_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "ONNX export" in str(w.message)]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding one good export of MODEL, made once for the module."""
    cache = tmp_path_factory.mktemp("good-cache")
    encode(cache)
    return cache


@pytest.fixture(scope="module")
def expected(good: Path) -> list[SparseVector]:
    return encode(good)


def copy_of(good: Path, where: Path) -> tuple[Path, Path]:
    """A private copy of the good cache, and the export folder in it."""
    shutil.copytree(good, where, ignore=shutil.ignore_patterns(".lock"), dirs_exist_ok=True)
    (folder,) = exports(where)
    return where, folder


def flip_a_byte(folder: Path, request: pytest.FixtureRequest | None = None) -> None:
    path = folder / onnx_export.MODEL_FILE
    data = bytearray(path.read_bytes())
    for at in range(len(data) // 8, len(data), 1 << 16):  # through every layer's weights
        data[at] ^= 0x55
    path.write_bytes(bytes(data))  # the same size


def truncate(folder: Path, request: pytest.FixtureRequest | None = None) -> None:
    path = folder / onnx_export.MODEL_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def remove_spec(folder: Path, request: pytest.FixtureRequest) -> None:
    (folder / onnx_export.SPEC_FILE).unlink()


def put_another_export_there(folder: Path, request: pytest.FixtureRequest) -> None:
    """The dense model's export, under the SPLADE export's name."""
    dense = request.getfixturevalue("dense_encoder")
    model = dense._onnx_model()
    assert model is not None
    shutil.rmtree(folder)
    shutil.copytree(model.folder, folder)


@pytest.mark.parametrize(
    "damage",
    [flip_a_byte, truncate, remove_spec, put_another_export_there],
    ids=["corrupted-same-size", "truncated", "missing-spec", "foreign-folder"],
)
def test_a_damaged_export_is_exported_again_not_run(
    damage: Callable[[Path, pytest.FixtureRequest], None],
    good: Path,
    expected: list[SparseVector],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    cache, folder = copy_of(good, tmp_path / "cache")
    damage(folder, request)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert encode(cache) == expected
    (message,) = cache_warnings(caught)
    assert str(folder) in message and "exported again" in message
    assert exports(cache) == [folder]  # replaced in place, whole
    assert leftovers(cache) == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert encode(cache) == expected
    assert cache_warnings(caught) == []  # whole now: used as it is


@contextmanager
def tmpfs(where: Path, *, size: str) -> Iterator[Path]:
    """A small tmpfs at ``where`` (CI runs as root); skips where it cannot be mounted."""
    where.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    done = (
        subprocess.run(
            [mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        if mount is not None and hasattr(os, "geteuid") and os.geteuid() == 0
        else None
    )
    if done is None or done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() if done else 'not root'})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def make_read_only(where: Path) -> None:
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # root writes through any mode bits
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
    else:
        where.chmod(0o555)


@contextmanager
def read_only_cache(where: Path, fill: Callable[[Path], Any]) -> Iterator[Path]:
    """A read-only folder holding what ``fill`` put there."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        with tmpfs(where, size="200m"):
            fill(where)
            make_read_only(where)
            yield where
    else:
        where.mkdir()
        fill(where)
        make_read_only(where)
        try:
            yield where
        finally:
            where.chmod(0o755)


def test_a_read_only_cache_is_used_when_whole_and_bypassed_with_one_warning_when_not(
    good: Path, expected: list[SparseVector], tmp_path: Path
) -> None:
    # A read-only home with a good export (a container image): used as is, silently.
    with read_only_cache(tmp_path / "whole", lambda where: copy_of(good, where)) as cache:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert encode(cache) == expected
        assert cache_warnings(caught) == []
    # An empty one: the export goes to a private temporary folder, with one warning for
    # this process that names the folder, why, and how to fix it.
    with read_only_cache(tmp_path / "empty", lambda where: None) as cache:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert encode(cache) == expected
            assert encode(cache) == expected  # a second encoder: no second warning
        (message,) = cache_warnings(caught)
        assert f"cache {cache} cannot be used" in message
        assert "Read-only file system" in message or "Permission denied" in message
        assert "$HYBRID_RETRIEVER_ONNX_CACHE" in message and "onnx_cache_dir=" in message
        assert list(cache.iterdir()) == []


def test_a_damaged_export_in_a_read_only_cache_is_bypassed_and_named(
    good: Path, expected: list[SparseVector], tmp_path: Path
) -> None:
    def damaged(where: Path) -> None:
        _, folder = copy_of(good, where)
        truncate(folder)

    with read_only_cache(tmp_path / "damaged", damaged) as cache:
        (folder,) = exports(cache)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert encode(cache) == expected
        (message,) = cache_warnings(caught)
        assert f"{folder} is damaged" in message and "delete that folder" in message


@pytest.mark.parametrize("when", ["found-first", "mid-export"])
def test_a_full_cache_is_bypassed_with_one_warning(
    when: str,
    expected: list[SparseVector],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # found-first: 1 MB free, checked before the export's work; mid-export: the check is
    # disabled, so the write itself fails (ENOSPC) half way through the 33 MB model.
    if when == "mid-export":
        monkeypatch.setattr(onnx_export, "_space_needed", lambda source, int8: 0, raising=False)
    with tmpfs(tmp_path / "full", size="1m" if when == "found-first" else "4m") as cache:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert encode(cache) == expected
        (message,) = cache_warnings(caught)
        assert f"cache {cache} cannot be used" in message
        assert ("MB free" in message) if when == "found-first" else ("No space left" in message)
        assert exports(cache) == [] and leftovers(cache) == []  # the partial export is gone


#: Exports MODEL (int8, another folder than the tests' fp32 one) and hangs once the
#: graph is written, as a process killed mid-export would have left it.
HANGING_EXPORT = """
import sys, time
from hybrid_retriever.encoders import onnx_export
trace = onnx_export._trace
def trace_and_hang(*args, **kwargs):
    trace(*args, **kwargs)
    print("traced", flush=True)
    time.sleep(600)
onnx_export._trace = trace_and_hang
onnx_export.exported_model(sys.argv[2], kind="sparse", int8=True, cache_dir=sys.argv[1])
"""


@pytest.mark.slow
def test_scratch_of_a_killed_export_is_removed_but_a_live_ones_is_not(
    good: Path, expected: list[SparseVector], tmp_path: Path
) -> None:
    cache, _ = copy_of(good, tmp_path / "cache")
    exporter = subprocess.Popen(
        [sys.executable, "-c", HANGING_EXPORT, str(cache), MODEL],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert exporter.stdout is not None
        assert exporter.stdout.readline().strip() == "traced"
        (scratch,) = leftovers(cache)
        assert (cache / scratch / onnx_export.MODEL_FILE).stat().st_size > 0
        # A live export's scratch is left alone by others using the cache.
        assert encode(cache) == expected
        assert leftovers(cache) == [scratch]
    finally:
        exporter.send_signal(signal.SIGKILL)
        exporter.wait()
        if exporter.stdout is not None:
            exporter.stdout.close()
    assert encode(cache) == expected  # the next use after the kill removes it
    assert leftovers(cache) == []


@pytest.mark.parametrize("package", ["torch", "transformers", "onnx", "onnxruntime"])
def test_the_cache_key_changes_with_the_packages_that_make_the_export(
    package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = onnx_export.model_folder(MODEL, kind="sparse")
    before = onnx_export.content_hash(source, kind="sparse", int8=True)
    assert onnx_export.content_hash(source, kind="sparse", int8=True) == before
    installed = importlib.metadata.version

    def version(name: str) -> str:
        return "0.0.1+other" if name == package else installed(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert onnx_export.content_hash(source, kind="sparse", int8=True) != before


def test_checking_an_export_costs_one_read_per_process(
    good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digests are computed once per folder and process, again only when a file's
    size, time or inode changes (about 63 ms for the 59 MB int8 dense model)."""
    cache, folder = copy_of(good, tmp_path / "cache")
    opened: list[str] = []
    real_open = Path.open

    def counting_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self.name == onnx_export.MODEL_FILE:
            opened.append(str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    for _ in range(3):
        assert onnx_export.exported_model(MODEL, kind="sparse", int8=False, cache_dir=cache)
    assert len(opened) == 1
    os.utime(folder / onnx_export.MODEL_FILE, ns=(time.time_ns(), time.time_ns()))
    assert onnx_export.exported_model(MODEL, kind="sparse", int8=False, cache_dir=cache)
    assert len(opened) == 2


def test_when_no_folder_can_take_the_export_the_error_says_which_and_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybrid_retriever import ModelLoadError
    from hybrid_retriever.encoders import export_cache

    monkeypatch.setattr(export_cache, "_PRIVATE", [])  # this process's own folder: not made yet
    with (
        read_only_cache(tmp_path / "cache", lambda where: None) as cache,
        read_only_cache(tmp_path / "tmp", lambda where: None) as temporary,
    ):
        monkeypatch.setattr(tempfile, "tempdir", str(temporary))
        with pytest.raises(ModelLoadError) as raised:
            encode(cache)
    message = str(raised.value)
    assert str(cache) in message and str(temporary) in message
    assert "$HYBRID_RETRIEVER_ONNX_CACHE" in message and "backend='torch'" in message


def test_a_model_file_changed_after_the_check_is_refused_when_loaded(
    good: Path, tmp_path: Path
) -> None:
    """What ONNX Runtime runs is what was exported: the bytes it is given are checked."""
    from hybrid_retriever import ModelLoadError
    from hybrid_retriever.encoders.onnx_model import OnnxModel

    cache, folder = copy_of(good, tmp_path / "cache")
    assert onnx_export.exported_model(MODEL, kind="sparse", int8=False, cache_dir=cache) == folder
    flip_a_byte(folder)
    with pytest.raises(ModelLoadError, match=f"Delete the folder {folder}"):
        OnnxModel(folder)
