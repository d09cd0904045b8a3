"""A bounded least-recently-used cache of query vectors.

Chat apps and evaluation loops ask the same questions again and again; encoding
a query costs milliseconds of CPU, a dictionary lookup microseconds. The cache
is keyed by branch and exact query text, so it never returns a vector of another
model or another text. Vectors are immutable values, safe to share. The retriever checks
each vector (``vector_checks.py``) before it puts it here, so a broken one is never served.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from hybrid_retriever.errors import InvalidParameterError

DEFAULT_QUERY_CACHE_SIZE = 1024
"""Entries per retriever (each branch of each query is one entry); 0 turns caching off."""


class QueryVectorCache:
    """Thread-safe LRU map of (branch, query text) to vector."""

    def __init__(self, max_entries: int = DEFAULT_QUERY_CACHE_SIZE) -> None:
        self._max_entries = check_cache_size(max_entries)
        self._entries: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def max_entries(self) -> int:
        return self._max_entries

    def get(self, branch: str, text: str) -> Any | None:
        """The cached vector, marked most recently used; None when absent."""
        with self._lock:
            vector = self._entries.get((branch, text))
            if vector is None:
                self.misses += 1
                return None
            self._entries.move_to_end((branch, text))
            self.hits += 1
            return vector

    def put(self, branch: str, text: str, vector: Any) -> None:
        if self._max_entries == 0:
            return
        with self._lock:
            self._entries[(branch, text)] = vector
            self._entries.move_to_end((branch, text))
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0


def check_cache_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParameterError(
            f"query_cache_size must be an integer >= 0 (0 turns the cache off), got {value!r}."
        )
    return value
