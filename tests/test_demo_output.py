"""The README's quickstart shows what ``python -m hybrid_retriever.demo`` prints, exactly.

The demo's output sits in README.md between ``<!-- demo-output -->`` and
``<!-- /demo-output -->``, in a ```text fence; ``benchmarks/results/demo_output.txt`` holds
the same, made by ``python -m hybrid_retriever.demo > benchmarks/results/demo_output.txt``.
Both are compared with a fresh run of the demo under the default backend, so a change to
the models, the runtime, the fusion or the corpus shows up here instead of in a README
that quietly goes stale.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from hybrid_retriever.demo import describe_encoders, main
from hybrid_retriever.encoders.dense import SentenceTransformerEncoder

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SAVED = ROOT / "benchmarks" / "results" / "demo_output.txt"
BLOCK = re.compile(
    r"<!-- demo-output -->\s*```text\n(?P<text>.*?)```\s*<!-- /demo-output -->", re.DOTALL
)


@pytest.fixture(scope="module")
def demo_output() -> str:
    """What the demo prints with its default questions."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        main([])
    return buffer.getvalue()


def normalised(text: str) -> str:
    """Lines without trailing spaces, no blank lines at the end."""
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def readme_block() -> str:
    match = BLOCK.search(README.read_text(encoding="utf-8"))
    if match is None:
        pytest.fail(
            "README.md has no demo output block: put the output of `python -m "
            "hybrid_retriever.demo` (benchmarks/results/demo_output.txt) between "
            "<!-- demo-output --> and <!-- /demo-output -->, in a ```text fence."
        )
    return match.group("text")


def test_the_demo_reports_the_int8_onnx_backend_first(demo_output: str) -> None:
    first = demo_output.splitlines()[0]
    assert first.startswith("Encoders: ")
    assert re.search(r"dense \S+ on onnx-int8", first), first
    assert re.search(r"sparse \S+ on onnx-int8", first), first


def test_the_readme_shows_the_demo_output(demo_output: str) -> None:
    assert normalised(readme_block()) == normalised(demo_output)


def test_the_saved_demo_output_is_current(demo_output: str) -> None:
    assert normalised(SAVED.read_text(encoding="utf-8")) == normalised(demo_output), (
        "Regenerate it: python -m hybrid_retriever.demo > benchmarks/results/demo_output.txt"
    )


def test_the_demo_warns_when_pytorch_stands_in_for_int8() -> None:
    """Without onnxruntime the default falls back to PyTorch, whose scores differ from
    the README's: the demo says so instead of printing them as if nothing changed."""
    line = describe_encoders({"dense": SentenceTransformerEncoder(backend="torch")})
    assert line.startswith("Encoders: dense all-MiniLM-L6-v2 on torch.")
    assert "pip install onnxruntime onnx" in line
