"""Whose advice an error or warning gives: the Python API's, or the command line's flags.

The same fault (a collection that does not exist, documents cut by an encoder) is fixed
with a keyword argument in Python and with a flag on the command line. The ``hybrid-retriever``
entry point says it is running (:func:`command_line`); messages pick their fix with
:func:`advise`. A process-wide flag rather than a context variable: the CLI's work runs
in worker threads too, and a CLI process runs nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_under_command_line = False


@contextmanager
def command_line() -> Iterator[None]:
    """While the ``hybrid-retriever`` command runs: messages advise its flags."""
    global _under_command_line
    previous, _under_command_line = _under_command_line, True
    try:
        yield
    finally:
        _under_command_line = previous


def advise(*, python: str, cli: str) -> str:
    """``cli`` under the command line, else ``python``."""
    return cli if _under_command_line else python
