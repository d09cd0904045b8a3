"""Running the two query encoders at once, each on its own share of torch's threads.

torch runs each operator on ``torch.get_num_threads()`` threads (its intra-op
threads; by default one per core). Two encoders started at the same time each ask
for all of them, so on 2 cores four busy threads share two cores. Measured per
SciFact query on a 2-core AMD EPYC (``benchmarks/query_encoding.py``, medians of 3
runs): one after the other 17-24 ms, both at once on all threads 16-17 ms, both at
once on one thread each 14-15 ms.

So :func:`encode_side_by_side` gives the caller's thread budget to the two jobs
in shares that add up to it, and runs them one after the other when the budget is
a single thread. torch's thread count is kept per OS thread (OpenMP and MKL both
keep it thread-local), so setting it here does not change it for the caller's
other threads, and it is restored before returning.

Each query's own forward pass runs on :data:`QUERY_TORCH_THREADS`, whatever the
caller's count: see there.

torch is only looked up, never imported: encoders that do not use torch have no
threads to share, and their jobs simply run at once.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, wait
from typing import TypeVar

First = TypeVar("First")
Second = TypeVar("Second")

#: torch threads for one query's forward pass, fixed so that a query's vector is a function
#: of its text alone on a given machine. oneDNN and MKL pick a matrix-product kernel, and how
#: to split it across threads, by shape, instruction set and thread count; a split along the
#: summed dimension changes the order of the additions, and so the last bits (more so in
#: bf16). A query encoded alone fixes the shape, the machine fixes the instruction set, and
#: this fixes the rest, so invoke, batch, a cache miss, async and the CLI all get the same
#: vector. One thread: a short query's products are too small to gain from a second
#: (docs/speed.md, "Same results on every CPU", has the timings).
QUERY_TORCH_THREADS = 1


def encode_side_by_side(
    first: Callable[[], First], second: Callable[[], Second], *, pool: Executor
) -> tuple[First, Second]:
    """``(first(), second())``: ``first`` in the caller, ``second`` in ``pool``, at once.

    Each gets half of the caller's torch threads (``first`` the larger half, so give
    it the slower job). With one thread to share, both run here, one after the other.
    """
    budget = torch_threads()
    if budget is not None and budget < 2:
        return first(), second()
    first_share = second_share = None
    if budget is not None:
        second_share = budget // 2
        first_share = budget - second_share
    background = pool.submit(_call_with_threads, second, second_share)
    try:
        result = _call_with_threads(first, first_share)
    except BaseException:
        wait([background])  # neither job outlives this call
        raise
    return result, background.result()


def torch_threads() -> int | None:
    """The calling thread's torch intra-op thread count; None if torch is not loaded."""
    torch = sys.modules.get("torch")
    return None if torch is None else int(torch.get_num_threads())


@contextlib.contextmanager
def torch_threads_set_to(count: int | None) -> Iterator[None]:
    """Within the block, the calling thread runs torch operators on ``count`` threads."""
    torch = sys.modules.get("torch")
    if count is None or torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _call_with_threads(job: Callable[[], First], count: int | None) -> First:
    with torch_threads_set_to(count):
        return job()
