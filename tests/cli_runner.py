"""Running ``hybrid-retriever`` as users run it, in a subprocess, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CLI = [sys.executable, "-m", "hybrid_retriever.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@dataclass
class Ran:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def start(*args: str | Path, cwd: Path) -> tuple[list[str], subprocess.Popen[str]]:
    """Start the command in ``cwd``, so that a default ./qdrant_data lands there."""
    argv = [str(a) for a in args]
    process = subprocess.Popen(
        [*CLI, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=cwd,
    )
    return argv, process


def finish(started: tuple[list[str], subprocess.Popen[str]], *, timeout: float = 600) -> Ran:
    argv, process = started
    stdout, stderr = process.communicate(timeout=timeout)
    return Ran(argv, process.returncode, stdout, stderr)


def run(*args: str | Path, cwd: Path) -> Ran:
    return finish(start(*args, cwd=cwd))


def ok(ran: Ran) -> Ran:
    assert ran.returncode == 0, f"{ran.args} failed:\n{ran.stderr}"
    assert "Traceback" not in ran.stderr
    return ran


def one_line_error(ran: Ran) -> str:
    assert ran.returncode == 1, (ran.args, ran.stdout, ran.stderr)
    assert "Traceback" not in ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith("hybrid-retriever: error: ")
    return lines[0]
