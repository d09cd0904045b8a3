"""BM25 as a sparse vector for Qdrant's ``IDF`` modifier: the document side of BM25 here,
the IDF in the engine.

Qdrant scores a query against a sparse vector with ``modifier=IDF`` as
``sum over query terms t of  q_t * idf(t) * d_t`` with
``idf(t) = ln(1 + (N - n_t + 0.5) / (n_t + 0.5))`` over the collection. So the document
vector carries BM25's saturated, length-normalised term frequency (Robertson and
Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009)::

    d_t = tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))

(``tf``: the term's count in the document, ``len``: the document's kept terms), and the
query vector weight 1 per distinct term: together, the BM25 score. No model, no
vocabulary file: the terms are

1. the text NFKC-normalised and lowercased, cut into Unicode word runs (letters and
   digits; everything else, underscores included, separates words);
2. without the language's stopwords (:mod:`hybrid_retriever.encoders.stopwords`);
3. Snowball-stemmed (PyStemmer, the C build of the Snowball stemmers), so "runs" and
   "running" are one term;
4. indexed by a 32-bit hash (:mod:`hybrid_retriever.encoders.term_hash`).

``avg_len`` is a constant, not the collection's mean length: the engine stores the
document weights and computes only IDF, so a document's length normalisation is fixed
when it is written; one constant, recorded with the collection (:meth:`identity`), keeps
old and new documents consistent as the collection grows.

Defaults: k1 1.2, b 0.4, avg_len 256, chosen by the BM25 study (``docs/bm25-study.md``)
from a grid fixed before any fused score was measured (``docs/bm25-study-plan.md``): k1
0.9 or 1.2 (Anserini's default, and the textbook value) by b 0.4 or 0.75, each paired
with the fusion candidates and picked by leave-one-corpus-out. avg_len 256 is fastembed's
constant, and a low b makes a constant that misses a corpus's mean cost less. Until the
study, k1 was 0.9: a collection records its settings, and one written at 0.9 keeps them
(``bm25_setting.py``).
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from hybrid_retriever.encoders.base import SparseEncoder
from hybrid_retriever.encoders.stopwords import STOPWORDS, SUPPORTED_LANGUAGES
from hybrid_retriever.encoders.term_hash import term_index
from hybrid_retriever.errors import InvalidParameterError, ModelLoadError
from hybrid_retriever.vectors import SparseVector

DEFAULT_LANGUAGE = "english"
DEFAULT_K1 = 1.2
DEFAULT_B = 0.4
DEFAULT_AVG_LEN = 256.0
TOKENISER_VERSION = 1
"""Bump when tokenisation, stopwords or hashing change: stored vectors would then differ."""
INSTALL_HINT = (
    "Install it with: pip install 'PyStemmer>=3.1,<4' (a dependency of hybrid-retriever)."
)

WORD_CACHE_SIZE = 1 << 18
"""Words remembered with their term's index; the cache starts over when full."""


@functools.cache
def _word_pattern() -> Any:
    """Letters, digits and combining marks: Python's ``\\w`` leaves out marks, which would
    cut Hindi or Tamil words at every vowel sign. Compiled on first use, so that importing
    the package does not load ``regex``."""
    import regex  # type: ignore[import-untyped]  # no stubs; ships with transformers

    return regex.compile(r"[\p{L}\p{N}\p{M}]+")


class Bm25Encoder(SparseEncoder):
    """Stemmed BM25 term weights for documents, unit weights for queries.

    Thread-safe: each thread gets its own stemmer (a PyStemmer object is not).
    """

    def __init__(
        self,
        *,
        language: str = DEFAULT_LANGUAGE,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
        avg_len: float = DEFAULT_AVG_LEN,
        stopwords: Iterable[str] | None = None,
    ) -> None:
        self._language = check_language(language)
        self._k1 = _check_number("k1", k1, low=0.0, high=None, note="the default is 1.2")
        self._b = _check_number("b", b, low=0.0, high=1.0, note="the default is 0.4")
        self._avg_len = _check_number(
            "avg_len", avg_len, low=0.0, high=None, note="the mean kept terms per document"
        )
        if self._avg_len == 0:
            raise InvalidParameterError("avg_len must be > 0 (the mean kept terms per document).")
        if stopwords is None:
            self._stopwords = STOPWORDS[self._language]
            self._custom_stopwords = False
        else:
            if isinstance(stopwords, str):
                raise InvalidParameterError(
                    "stopwords must be a collection of words, such as ['the', 'a'], not a str."
                )
            self._stopwords = frozenset(_normalise(word) for word in stopwords)
            self._custom_stopwords = True
        self._stemmer_module = _import_stemmer()
        if self._language not in self._stemmer_module.algorithms():
            raise ModelLoadError(
                f"The installed PyStemmer has no {self._language!r} stemmer; upgrade it: "
                "pip install -U 'PyStemmer>=3.1'."
            )
        self._local = threading.local()
        self._word_indices: dict[str, int] = {}

    @property
    def name(self) -> str:
        return f"bm25 ({self._language})"

    @property
    def language(self) -> str:
        return self._language

    def identity(self) -> dict[str, Any]:
        """Everything that decides the vectors, for a collection to record and compare:
        two encoders with equal identities write the same vector for the same text."""
        return {
            "kind": "bm25",
            "language": self._language,
            "k1": self._k1,
            "b": self._b,
            "avg_len": self._avg_len,
            "tokeniser": TOKENISER_VERSION,
            "stopwords": (
                "sha256:" + hashlib.sha256("\n".join(sorted(self._stopwords)).encode()).hexdigest()
                if self._custom_stopwords
                else "default"
            ),
            "hash": "murmur3_32-abs",
            "stemmer": f"snowball/PyStemmer {self._stemmer_module.version()}",
        }

    def terms(self, text: str) -> list[str]:
        """``text``'s terms in order: words, stopwords dropped, stemmed."""
        stems: list[str] = self._stemmer().stemWords(self._words(text))
        return stems

    def term_indices(self, text: str) -> list[int]:
        """The index of each of ``text``'s terms, in order (``term_index`` of :meth:`terms`)."""
        cache = self._word_indices
        indices = []
        for word in self._words(text):
            index = cache.get(word)
            if index is None:
                if len(cache) >= WORD_CACHE_SIZE:
                    cache.clear()
                index = cache[word] = term_index(self._stemmer().stemWord(word))
            indices.append(index)
        return indices

    def _words(self, text: str) -> list[str]:
        words: list[str] = _word_pattern().findall(_normalise(text))
        return [w for w in words if w not in self._stopwords]

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        return [self._encode_document(text) for text in texts]

    def encode_query(self, text: str) -> SparseVector:
        indices = sorted(set(self.term_indices(text)))
        return SparseVector(indices=indices, values=[1.0] * len(indices))

    def document_weight(self, tf: int, length: int) -> float:
        """BM25's saturated, length-normalised weight of a term seen ``tf`` times in a
        document of ``length`` kept terms."""
        norm = 1.0 - self._b + self._b * length / self._avg_len
        return tf * (self._k1 + 1.0) / (tf + self._k1 * norm)

    def _encode_document(self, text: str) -> SparseVector:
        terms = self.term_indices(text)
        # Counted per index: terms whose hashes collide are one term to the engine.
        counts = Counter(terms)
        indices = sorted(counts)
        # document_weight, with the per-document constants taken out of the loop.
        k1_norm = self._k1 * (1.0 - self._b + self._b * len(terms) / self._avg_len)
        k1_plus_1 = self._k1 + 1.0
        values = [counts[i] * k1_plus_1 / (counts[i] + k1_norm) for i in indices]
        return SparseVector(indices=indices, values=values)

    def _stemmer(self) -> Any:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = self._local.stemmer = self._stemmer_module.Stemmer(self._language)
        return stemmer


def check_language(language: Any) -> str:
    """``language`` lowercased, or InvalidParameterError listing the supported ones."""
    if not isinstance(language, str) or language.strip().lower() not in SUPPORTED_LANGUAGES:
        raise InvalidParameterError(
            f"BM25 language {language!r} is not supported; use one of "
            f"{list(SUPPORTED_LANGUAGES)} (the Snowball stemmers)."
        )
    return language.strip().lower()


def _check_number(name: str, value: Any, *, low: float, high: float | None, note: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameterError(f"{name} must be a number, not {type(value).__name__}.")
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
        raise InvalidParameterError(f"{name} must be finite and {bounds} ({note}), got {value}.")
    return float(value)


def _normalise(text: str) -> str:
    # NFKC first: a decomposed "é" would otherwise split the word at its accent.
    return unicodedata.normalize("NFKC", text).lower()


def _import_stemmer() -> Any:
    try:
        import Stemmer  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise ModelLoadError(f"The BM25 encoder needs PyStemmer. {INSTALL_HINT}") from None
    return Stemmer
