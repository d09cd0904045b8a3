"""The BM25 encoder: exact weights, terms, stable indices and parameter checks.

Values are computed by hand from the formulas in ``hybrid_retriever.encoders.bm25`` and
the published MurmurHash3_x86_32 test vectors, not by running the code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hybrid_retriever.encoders.base import SparseEncoder
from hybrid_retriever.encoders.bm25 import Bm25Encoder
from hybrid_retriever.encoders.stopwords import STOPWORDS, SUPPORTED_LANGUAGES
from hybrid_retriever.encoders.term_hash import murmur3_32, term_index
from hybrid_retriever.errors import InvalidParameterError
from hybrid_retriever.vectors import SparseVector

HELLO = 0x248BFA47  # murmur3_x86_32(b"hello", seed=0): smhasher's published vector, positive


def test_murmur3_published_vectors() -> None:
    assert murmur3_32(b"") == 0
    assert murmur3_32(b"", seed=1) == 0x514E28B7
    assert murmur3_32(b"hello") == HELLO
    assert murmur3_32(b"Hello, world!") == 0xC0363E43
    assert murmur3_32(b"The quick brown fox jumps over the lazy dog") == 0x2E4FF723


def test_term_index_is_abs_of_signed_hash() -> None:
    assert term_index("hello") == HELLO == 613153351
    # 0xC0363E43 >= 2**31: as int32 it is 0xC0363E43 - 2**32 = -1070186941.
    assert term_index("Hello, world!") == 1070186941


def test_query_has_unit_weight_per_distinct_stem_with_the_pinned_index() -> None:
    encoder = Bm25Encoder()
    assert isinstance(encoder, SparseEncoder)
    assert encoder.encode_query("Hello") == SparseVector(indices=[HELLO], values=[1.0])
    query = encoder.encode_query("running runs RUN cats")
    assert query.indices == sorted([term_index("run"), term_index("cat")])
    assert query.values == [1.0, 1.0]


def test_document_weights_exact_without_length_effect() -> None:
    # kept terms: cat run cat sat (the, and, the dropped): len 4 = avg_len, so the
    # length factor is 1: w = tf * 2.2 / (tf + 1.2).
    encoder = Bm25Encoder(k1=1.2, b=0.75, avg_len=4)
    assert encoder.terms("The cat runs and the cat sat") == ["cat", "run", "cat", "sat"]
    (vector,) = encoder.encode_documents(["The cat runs and the cat sat"])
    weights = dict(zip(vector.indices, vector.values, strict=True))
    assert vector.indices == sorted(weights)
    assert weights == {
        term_index("cat"): pytest.approx(4.4 / 3.2, abs=1e-15),  # 1.375
        term_index("run"): pytest.approx(1.0, abs=1e-15),
        term_index("sat"): pytest.approx(1.0, abs=1e-15),
    }


def test_document_weights_exact_with_length_normalisation() -> None:
    # k1 1, b 0.5, len 4, avg_len 8: norm = 0.5 + 0.5 * 4/8 = 0.75;
    # cat: 2 * 2 / (2 + 0.75) = 16/11; run, sat: 1 * 2 / 1.75 = 8/7.
    encoder = Bm25Encoder(k1=1.0, b=0.5, avg_len=8)
    (vector,) = encoder.encode_documents(["The cat runs and the cat sat"])
    weights = dict(zip(vector.indices, vector.values, strict=True))
    assert weights[term_index("cat")] == pytest.approx(16 / 11, abs=1e-15)
    assert weights[term_index("run")] == pytest.approx(8 / 7, abs=1e-15)
    assert weights[term_index("sat")] == pytest.approx(8 / 7, abs=1e-15)
    # Defaults k1 1.2 (the BM25 study's), b 0.4, avg_len 256: norm = 0.6 + 0.4 * 4/256
    # = 0.60625.
    (default,) = Bm25Encoder().encode_documents(["The cat runs and the cat sat"])
    weights = dict(zip(default.indices, default.values, strict=True))
    assert weights[term_index("cat")] == pytest.approx(4.4 / (2 + 1.2 * 0.60625), abs=1e-15)


def test_longer_documents_weigh_a_term_less() -> None:
    encoder = Bm25Encoder(avg_len=10)
    short, long = encoder.encode_documents(["cat", "cat " + "dog " * 40])
    assert (
        short.values[short.indices.index(term_index("cat"))]
        > long.values[long.indices.index(term_index("cat"))]
    )


def test_stopwords_dropped_and_stems_merged() -> None:
    encoder = Bm25Encoder()
    assert encoder.terms("This is the running of the runs") == ["run", "run"]
    doc, other = encoder.encode_documents(["runs", "running"])
    assert doc.indices == other.indices == [term_index("run")]


def test_empty_and_stopword_only_text_give_empty_vectors() -> None:
    encoder = Bm25Encoder()
    empty = SparseVector(indices=[], values=[])
    assert encoder.encode_documents(["", "  \n", "The and of it", "!!! ..."]) == [empty] * 4
    assert encoder.encode_query("the") == empty
    assert encoder.encode_documents([]) == []


def test_unicode_words_are_normalised_and_kept_whole() -> None:
    encoder = Bm25Encoder()
    # Composed and decomposed accents are one word; punctuation and "_" separate words.
    assert encoder.terms("café cafe\u0301 fun_time") == ["café", "café", "fun", "time"]
    # Devanagari vowel signs are combining marks: the word must not be cut at them.
    assert (
        Bm25Encoder(language="hindi").terms("नमस्ते")
        and len(Bm25Encoder(language="hindi").terms("नमस्ते दुनिया")) == 2
    )


def test_indices_are_the_same_in_another_process() -> None:
    texts = ["Hello world, running cats", "Ünïcödé wörds and numbers 42"]
    here = [[v.indices, v.values] for v in Bm25Encoder().encode_documents(texts)]
    script = (
        "import json, sys; from hybrid_retriever.encoders.bm25 import Bm25Encoder; "
        "v = Bm25Encoder().encode_documents(json.loads(sys.argv[1])); "
        "print(json.dumps([[x.indices, x.values] for x in v]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(texts)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == here


def test_language_and_stopwords() -> None:
    french = Bm25Encoder(language="French")
    assert french.language == "french"
    assert french.terms("le chat et l'homme") == ["chat", "homm"]
    custom = Bm25Encoder(stopwords=["cat"])
    assert custom.terms("the cat") == ["the"]
    assert set(STOPWORDS) == set(SUPPORTED_LANGUAGES)
    assert STOPWORDS["english"] >= {"the", "a", "and", "of"}


@pytest.mark.parametrize("language", ["klingon", "", None, 3, "porter"])
def test_unsupported_language_lists_the_supported_ones(language: object) -> None:
    with pytest.raises(InvalidParameterError) as error:
        Bm25Encoder(language=language)  # type: ignore[arg-type]
    message = str(error.value)
    assert "not supported" in message and "'english'" in message and "'french'" in message


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"k1": -0.1}, "k1 must be finite and >= 0"),
        ({"k1": float("nan")}, "k1 must be finite"),
        ({"k1": True}, "k1 must be a number"),
        ({"b": 1.5}, "b must be finite and between 0 and 1"),
        ({"avg_len": 0}, "avg_len must be > 0"),
        ({"avg_len": "256"}, "avg_len must be a number"),
        ({"stopwords": "the"}, "stopwords must be a collection of words"),
    ],
)
def test_bad_parameters_say_what_is_wrong(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidParameterError, match=fragment):
        Bm25Encoder(**kwargs)  # type: ignore[arg-type]


def test_identity_records_what_decides_the_vectors() -> None:
    identity = Bm25Encoder().identity()
    assert identity == {
        **identity,
        "kind": "bm25",
        "language": "english",
        "k1": 1.2,
        "b": 0.4,
        "avg_len": 256.0,
        "tokeniser": 1,
        "stopwords": "default",
        "hash": "murmur3_32-abs",
    }
    assert identity["stemmer"].startswith("snowball/PyStemmer 3.")
    assert Bm25Encoder(k1=0.9).identity() != identity
    custom = Bm25Encoder(stopwords=["b", "a"]).identity()["stopwords"]
    assert custom.startswith("sha256:")
    assert custom == Bm25Encoder(stopwords=["a", "b"]).identity()["stopwords"]
