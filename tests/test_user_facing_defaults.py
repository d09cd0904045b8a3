"""What a new user meets on a first run: the default runtime is installed and named, the
first run is quiet, and the names and defaults agree across Python and the CLI."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

from hybrid_retriever import SentenceTransformerEncoder

ROOT = Path(__file__).resolve().parent.parent


def test_every_install_gets_the_int8_onnx_runtime() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip() for d in project["dependencies"]}
    assert {"onnxruntime", "onnx", "platformdirs"} <= names
    assert project["optional-dependencies"]["onnx"] == []  # an alias kept for old commands


def test_a_first_run_exports_quietly_and_logs_its_runtime_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A fresh export cache: ONNX Runtime's quantizer advice stays hidden; one INFO line
    on the package's logger names the runtime."""
    encoder = SentenceTransformerEncoder(onnx_cache_dir=tmp_path)
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoder.encode_query("bread")
        encoder.encode_query("yeast")
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    lines = [
        (r.name, r.levelno, r.getMessage())
        for r in caplog.records
        if r.name.startswith("hybrid_retriever")
    ]
    assert lines == [
        (
            "hybrid_retriever.encoders.onnx_model",
            logging.INFO,
            "dense encoder all-MiniLM-L6-v2: ONNX Runtime int8",
        )
    ]


def test_the_torch_runtime_is_named_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hybrid_retriever")
    encoder = SentenceTransformerEncoder(backend="torch")
    encoder._onnx.model()
    assert [r.getMessage() for r in caplog.records] == [
        "dense encoder all-MiniLM-L6-v2: PyTorch (backend='torch')"
    ]


def test_a_mistyped_model_name_lists_the_known_short_names(tmp_path: Path) -> None:
    from hybrid_retriever import ModelLoadError

    with pytest.raises(ModelLoadError) as caught:
        SentenceTransformerEncoder("all-MiniLM-L6-v3", onnx_cache_dir=tmp_path).encode_query("x")
    message = str(caught.value)
    assert "Did you mean 'all-MiniLM-L6-v2'?" in message
    assert "all-MiniLM-L6-v2, splade-tiny" in message
    assert "HF_HUB_OFFLINE" not in message and "backend='torch'" not in message
    with pytest.raises(ModelLoadError) as caught:
        SentenceTransformerEncoder("all-MiniLM-L6-v3", backend="torch").encode_query("x")
    message = str(caught.value)
    assert "Did you mean 'all-MiniLM-L6-v2'?" in message
    assert "HF_HUB_OFFLINE" not in message
