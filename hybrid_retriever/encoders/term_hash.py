"""A term's sparse-vector index: a documented 32-bit hash, the same on every process and CPU.

BM25 has no vocabulary file, so each term needs an index that any process computes
alike, forever: Python's ``hash()`` is salted per process and would scatter a
collection's terms. The scheme is fastembed's for its ``Qdrant/bm25`` model::

    index(term) = abs(murmur3_x86_32(term.encode("utf-8"), seed=0) as a signed int32)

MurmurHash3 (Austin Appleby, public domain, https://github.com/aappleby/smhasher),
its 32-bit x86 variant, computed here in pure Python from the published algorithm (no
C extension to install). Indices lie in [0, 2**31], which Qdrant's uint32 sparse
indices hold. Two terms whose hashes collide (or differ only in sign) share an index and
count as one term; with a corpus's few hundred thousand terms that happens to a few
rare pairs, as it does in fastembed.
"""

from __future__ import annotations

from functools import lru_cache

_MASK = 0xFFFFFFFF
_C1 = 0xCC9E2D51
_C2 = 0x1B873593


def _rotl(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (32 - shift))) & _MASK


def _scramble(block: int) -> int:
    return (_rotl((block * _C1) & _MASK, 15) * _C2) & _MASK


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3_x86_32 of ``data``, as an unsigned 32-bit integer."""
    h = seed & _MASK
    whole = len(data) - len(data) % 4
    for start in range(0, whole, 4):
        h ^= _scramble(int.from_bytes(data[start : start + 4], "little"))
        h = (_rotl(h, 13) * 5 + 0xE6546B64) & _MASK
    tail = data[whole:]
    if tail:
        h ^= _scramble(int.from_bytes(tail, "little"))
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h


@lru_cache(maxsize=1 << 18)
def term_index(term: str) -> int:
    """The sparse index of ``term``: abs of its signed murmur3_32 (fastembed's scheme).

    Cached: a corpus repeats its terms, and the hash is pure Python.
    """
    unsigned = murmur3_32(term.encode("utf-8"))
    signed = unsigned - (1 << 32) if unsigned >= 1 << 31 else unsigned
    return abs(signed)
