"""Every code block in README.md and docs/ runs, so a documented command cannot drift.

* ```` ```python ```` blocks are executed in order, one namespace per file, in a temporary
  working directory that holds a copy of ``examples/``;
* ```` ```bash ```` blocks run with bash from such a directory (one per file, shared by its
  blocks in order), with the ``hybrid-retriever`` of this interpreter's environment,
  against the tiny bundled data in ``examples/``;
* ```` ```text ```` blocks are output or illustration and are not run.

A block that cannot run here is preceded by ``<!-- doc-test: skip REASON -->``, with REASON
one of :data:`SKIP_REASONS`; each such block shows up as a skipped test with its reason.
Any other fence language, or an unknown reason, fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

SKIP_REASONS = {
    "installs": (
        "installs packages (pip install, or scripts/demo.sh and scripts/test.sh, which create "
        ".venv and install into it): CI runs scripts/test.sh itself, and a test must not "
        "install into the environment it runs in"
    ),
    "needs-server": (
        "needs a Qdrant server or Docker, which CI machines lack; tests/test_server.py covers "
        "the server path when QDRANT_URL is set"
    ),
    "full-corpus": (
        "reproduces a committed figure on the full corpora in ../shared/data (not in the "
        "repository), minutes to hours; its result file is committed in benchmarks/results/"
    ),
}
"""Why a documentation block may be left out of the suite; nothing else may be."""

RUN_LANGUAGES = {"python", "bash"}
SHOWN_LANGUAGES = {"text"}
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")
_SKIP = re.compile(r"^<!-- doc-test: skip (?P<reason>[\w-]+) -->$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, from 1
    language: str
    code: str
    skip: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> Iterator[Block]:
    """The fenced blocks of one Markdown file, with the skip marker just above each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opened = _FENCE.match(lines[index])
        if opened is None:
            index += 1
            continue
        indent = opened["indent"]
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index].removeprefix(indent))
            index += 1
        previous = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        marker = _SKIP.match(previous.strip())
        yield Block(
            path=path,
            line=start + 1,
            language=opened["lang"],
            code="\n".join(body) + "\n",
            skip=marker["reason"] if marker else None,
        )
        index += 1


ALL_BLOCKS = [block for path in DOC_FILES for block in blocks(path)]


def _files_with(language: str) -> list[Path]:
    return sorted(
        {b.path for b in ALL_BLOCKS if b.language == language and b.skip is None},
        key=str,
    )


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_documentation_has_blocks_of_both_kinds() -> None:
    """The parser finds what is there: a broken parser would make every test vacuous."""
    assert ROOT / "README.md" in _files_with("python")
    assert ROOT / "README.md" in _files_with("bash")
    readme = [b for b in ALL_BLOCKS if b.path.name == "README.md"]
    assert any("hybrid-retriever tune" in b.code for b in readme if b.language == "bash")


def test_every_block_is_run_or_marked() -> None:
    """No block escapes: a run language, `text`, or a skip marker with a listed reason."""
    problems = []
    for block in ALL_BLOCKS:
        if block.language not in RUN_LANGUAGES | SHOWN_LANGUAGES:
            problems.append(
                f"{block.where}: fence language {block.language!r}; use python or bash (run), "
                "or text (output, not run)"
            )
        if block.skip is not None and block.skip not in SKIP_REASONS:
            problems.append(f"{block.where}: skip reason {block.skip!r} is not in SKIP_REASONS")
        if block.skip is not None and block.language not in RUN_LANGUAGES:
            problems.append(f"{block.where}: a skip marker on a {block.language!r} block")
    assert not problems, "\n".join(problems)


def test_the_tune_then_search_sequence_is_run() -> None:
    """Issue 25: tune's output file is the one search --fusion-config reads, as written."""
    shell = [b for b in ALL_BLOCKS if b.language == "bash" and b.skip is None]
    tuned = [b for b in shell if re.search(r"hybrid-retriever tune .*--out fusion\.json", b.code)]
    assert tuned, "no run bash block tunes into fusion.json"
    assert any("--fusion-config fusion.json" in b.code for b in shell)


def test_the_api_page_documents_every_export() -> None:
    """docs/api.md renders each public name from its docstrings; a new export needs a line."""
    import hybrid_retriever

    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: hybrid_retriever\.(\w+)$", page, flags=re.M))
    errors = {n for n in hybrid_retriever.__all__ if n.endswith(("Error", "Warning"))}
    missing = set(hybrid_retriever.__all__) - documented - errors
    assert not missing, f"add '::: hybrid_retriever.NAME' to docs/api.md for: {sorted(missing)}"
    assert "errors" in documented  # the exception and warning types, from their module


def test_the_readmes_links_point_at_files_that_exist() -> None:
    """mkdocs checks the pages' links; the README is outside the site, so check it here."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\((?!https?://|#)([^)#\s]+)", text)
    assert targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


@pytest.mark.parametrize(
    "block", [b for b in ALL_BLOCKS if b.skip is not None], ids=lambda b: b.where
)
def test_skipped_block(block: Block) -> None:
    pytest.skip(f"doc-test: skip {block.skip}: {SKIP_REASONS.get(block.skip or '', '?')}")


@pytest.fixture()
def doc_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary working directory with the bundled examples, and no data location set."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYBRID_RETRIEVER_PATH", raising=False)
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("path", _files_with("python"), ids=_id)
def test_python_blocks(path: Path, doc_workdir: Path) -> None:
    """Each file's Python blocks, in order, in one namespace; every failure is reported."""
    namespace: dict[str, Any] = {"__name__": "__doc_blocks__"}
    failures = []
    try:
        for block in blocks(path):
            if block.language != "python" or block.skip is not None:
                continue
            try:
                exec(compile(block.code, block.where, "exec"), namespace)
            except Exception:
                failures.append(f"{block.where}:\n{traceback.format_exc(limit=-3)}")
    finally:
        _close_everything(namespace)
    assert not failures, "\n".join(failures)


def _close_everything(namespace: dict[str, Any]) -> None:
    """Release the folders the blocks opened (a folder is open in one retriever at a time)."""
    from hybrid_retriever import HybridRetriever, HybridVectorStore

    for value in namespace.values():
        if isinstance(value, HybridVectorStore):
            value = value.retriever
        if isinstance(value, HybridRetriever):
            value.close()


@pytest.mark.slow
@pytest.mark.parametrize("path", _files_with("bash"), ids=_id)
def test_bash_blocks(path: Path, doc_workdir: Path) -> None:
    """Each file's shell blocks, in order, in one directory, as a reader would type them."""
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    failures = []
    for block in blocks(path):
        if block.language != "bash" or block.skip is not None:
            continue
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.code],
            cwd=doc_workdir,
            env=environment,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            failures.append(
                f"{block.where}: exit {done.returncode}\n--- block\n{block.code}"
                f"--- stdout (end)\n{done.stdout[-3000:]}\n--- stderr (end)\n{done.stderr[-3000:]}"
            )
    assert not failures, "\n".join(failures)
