"""Faults that used to give a wrong result with no error: unsearchable vectors, ignored
arguments, metadata that came back altered, nesting that crashed with RecursionError.

Each case runs on both embedded engines where both apply. Encoders are the real default
models; a broken encoder is the real model behind a LangChain ``Embeddings`` (or an
encoder subclass) that returns NaN, infinity or zeros for marked texts, as a failing
API or a damaged model would.
"""

from __future__ import annotations

import asyncio
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from hybrid_retriever import (
    HybridRetriever,
    HybridVectorStore,
    InvalidDocumentError,
    InvalidParameterError,
    InvalidQueryError,
    SentenceTransformerEncoder,
    SparseVector,
    SpladeEncoder,
)
from hybrid_retriever.encoders.base import SparseEncoder

MakeRetriever = Callable[..., HybridRetriever]

POISON = "POISON"
"""Texts containing this get a broken vector from the broken encoders below."""

BROKEN_VALUES: dict[str, Callable[[int], list[float]]] = {
    "nan": lambda n: [math.nan] + [0.1] * (n - 1),
    "inf": lambda n: [0.1] * (n - 1) + [math.inf],
    "zeros": lambda n: [0.0] * n,
}


class BrokenEmbeddings(Embeddings):
    """The real dense model as a LangChain ``Embeddings`` that returns a broken vector
    (``kind``) for texts containing POISON; counts the queries it embeds."""

    def __init__(self, inner: SentenceTransformerEncoder, kind: str) -> None:
        self.inner = inner
        self.kind = kind
        self.queries: list[str] = []

    def _broken(self, text: str, vector: list[float]) -> list[float]:
        return BROKEN_VALUES[self.kind](len(vector)) if POISON in text else vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self.inner.encode_documents(texts)
        return [self._broken(t, v) for t, v in zip(texts, vectors, strict=True)]

    def embed_query(self, text: str) -> list[float]:
        self.queries.append(text)
        return self._broken(text, self.inner.encode_query(text))


class BrokenSparse(SparseEncoder):
    """The real SPLADE model, with a NaN weight for texts containing POISON."""

    def __init__(self, inner: SpladeEncoder, *, empty: bool = False) -> None:
        self.inner = inner
        self.empty = empty

    @property
    def name(self) -> str:
        return "BrokenSparse"

    def _broken(self, text: str, vector: SparseVector) -> SparseVector:
        if POISON not in text:
            return vector
        if self.empty:
            return SparseVector([], [])
        return SparseVector(vector.indices, [math.nan, *vector.values[1:]])

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        vectors = self.inner.encode_documents(texts)
        return [self._broken(t, v) for t, v in zip(texts, vectors, strict=True)]

    def encode_query(self, text: str) -> SparseVector:
        return self._broken(text, self.inner.encode_query(text))


GOOD = ["Yeast makes bread dough rise.", "Planets orbit the sun."]


# -- finite vectors only: documents ------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BROKEN_VALUES))
def test_a_broken_dense_document_vector_is_refused(
    make_retriever: MakeRetriever,
    dense_encoder: SentenceTransformerEncoder,
    engine: str,
    kind: str,
) -> None:
    """Before: Edge stored it (the document could never be found by dense search) and
    qdrant-client failed with its own error."""
    retriever = make_retriever(engine=engine, dense_encoder=BrokenEmbeddings(dense_encoder, kind))
    retriever.add_texts(GOOD, ids=["bread", "planets"], show_progress=False)
    with pytest.raises(InvalidDocumentError) as raised:
        retriever.add_texts(
            ["A fine text.", f"{POISON} text"], ids=["fine", "bad-one"], show_progress=False
        )
    message = str(raised.value)
    assert "position 1" in message and "'bad-one'" in message
    assert "'BrokenEmbeddings'" in message and "dense encoder" in message
    assert retriever.count() == 2  # nothing of the batch was written
    assert retriever.get_by_ids(["fine", "bad-one"]) == []


def test_a_non_finite_sparse_document_vector_is_refused(
    make_retriever: MakeRetriever, sparse_encoder: SpladeEncoder, engine: str
) -> None:
    retriever = make_retriever(engine=engine, sparse_encoder=BrokenSparse(sparse_encoder))
    with pytest.raises(InvalidDocumentError, match=r"position 0 .*'BrokenSparse'.*nan"):
        retriever.add_texts([f"{POISON} text"], ids=["bad"], show_progress=False)
    with pytest.raises(InvalidDocumentError, match=r"position 1 .*'BrokenSparse'.*nan"):
        asyncio.run(retriever.aadd_texts(["fine", f"{POISON} text"], show_progress=False))
    assert retriever.get_by_ids(["bad"]) == [] and retriever.count() == 0


def test_a_document_with_no_sparse_terms_is_stored_and_found_by_dense(
    make_retriever: MakeRetriever, sparse_encoder: SpladeEncoder, engine: str
) -> None:
    """Kept behaviour: an empty sparse vector is legitimate (nothing for SPLADE to match);
    the document is stored and dense search finds it."""
    retriever = make_retriever(
        engine=engine, sparse_encoder=BrokenSparse(sparse_encoder, empty=True)
    )
    retriever.add_texts([*GOOD, f"{POISON} telescopes see far galaxies"], show_progress=False)
    found = {d.page_content: d for d in retriever.invoke("telescopes and galaxies", k=3)}
    stored = found[f"{POISON} telescopes see far galaxies"]
    assert stored.metadata["_ranks"]["dense"] == 1
    assert stored.metadata["_ranks"]["sparse"] is None


# -- finite vectors only: queries ---------------------------------------------------------------


@pytest.fixture()
def broken_dense_retriever(
    make_retriever: MakeRetriever, dense_encoder: SentenceTransformerEncoder, request: Any
) -> tuple[HybridRetriever, BrokenEmbeddings]:
    engine, kind = request.param
    embeddings = BrokenEmbeddings(dense_encoder, kind)
    retriever = make_retriever(engine=engine, dense_encoder=embeddings)
    retriever.add_texts(GOOD, show_progress=False)
    return retriever, embeddings


@pytest.mark.parametrize(
    "broken_dense_retriever",
    [(e, k) for e in ("edge", "qdrant-client") for k in sorted(BROKEN_VALUES)],
    indirect=True,
    ids=lambda p: "-".join(p),
)
def test_a_broken_query_vector_is_refused_and_never_cached(
    broken_dense_retriever: tuple[HybridRetriever, BrokenEmbeddings],
) -> None:
    """Before: a NaN query vector silently emptied the dense branch on Edge."""
    retriever, embeddings = broken_dense_retriever
    query = f"{POISON} bread"
    for attempt in range(2):
        with pytest.raises(InvalidQueryError) as raised:
            retriever.invoke(query)
        assert repr(query) in str(raised.value) and "'BrokenEmbeddings'" in str(raised.value)
        # Encoded again on the second attempt: the bad vector was not cached.
        assert embeddings.queries.count(query) == attempt + 1
    with pytest.raises(InvalidQueryError, match="BrokenEmbeddings"):
        asyncio.run(retriever.ainvoke(query))
    assert retriever.invoke("bread dough", k=1)[0].page_content == GOOD[0]


def test_a_non_finite_sparse_query_vector_is_refused(
    make_retriever: MakeRetriever, sparse_encoder: SpladeEncoder, engine: str
) -> None:
    retriever = make_retriever(engine=engine, sparse_encoder=BrokenSparse(sparse_encoder))
    retriever.add_texts(GOOD, show_progress=False)
    with pytest.raises(InvalidQueryError, match=r"sparse encoder 'BrokenSparse'.*'POISON sun'"):
        retriever.invoke(f"{POISON} sun")
    assert retriever.invoke("the sun", k=1)[0].page_content == GOOD[1]


def test_a_query_with_no_sparse_terms_searches_dense_only(
    make_retriever: MakeRetriever, sparse_encoder: SpladeEncoder, engine: str
) -> None:
    """Kept behaviour: an empty sparse query vector is not an error; that branch is skipped."""
    retriever = make_retriever(
        engine=engine, sparse_encoder=BrokenSparse(sparse_encoder, empty=True), bm25_encoder=False
    )
    retriever.add_texts(GOOD, show_progress=False)
    found = retriever.invoke(f"{POISON} planets and the sun", k=1)
    assert found[0].page_content == GOOD[1]
    assert found[0].metadata["_ranks"] == {"dense": 1, "sparse": None}


# -- unknown arguments are errors ---------------------------------------------------------------

TYPOS = [
    pytest.param({"pth": "./data"}, "path", id="pth"),
    pytest.param({"fusoin": "rrf"}, "fusion", id="fusoin"),
    pytest.param({"top_k": 2}, "k", id="top_k"),
    pytest.param({"locaton": ":memory:"}, "location", id="locaton"),
    pytest.param({"colection_name": "x"}, "collection_name", id="colection_name"),
]

CONSTRUCTORS: list[Any] = [
    pytest.param(lambda **kw: HybridRetriever(**kw), id="HybridRetriever"),
    pytest.param(
        lambda **kw: HybridRetriever.from_texts(["t"], show_progress=False, **kw), id="from_texts"
    ),
    pytest.param(
        lambda **kw: HybridRetriever.from_documents([Document(page_content="t")], **kw),
        id="from_documents",
    ),
    pytest.param(lambda **kw: HybridVectorStore(**kw), id="HybridVectorStore"),
    pytest.param(lambda **kw: HybridVectorStore.from_texts(["t"], **kw), id="store.from_texts"),
    pytest.param(
        lambda **kw: HybridVectorStore.from_documents([Document(page_content="t")], **kw),
        id="store.from_documents",
    ),
]


@pytest.mark.parametrize("build", CONSTRUCTORS)
@pytest.mark.parametrize(("typo", "meant"), TYPOS)
def test_unknown_arguments_are_errors_with_a_suggestion(
    build: Callable[..., Any], typo: dict[str, Any], meant: str
) -> None:
    """Before: LangChain's pydantic models dropped them without a word."""
    with pytest.raises(InvalidParameterError) as raised:
        build(**typo)
    message = str(raised.value)
    assert f"{next(iter(typo))!r} (did you mean {meant!r}?)" in message
    assert "accepted arguments are" in message and "collection_name" in message


def test_write_option_typos_suggest_the_write_option() -> None:
    with pytest.raises(InvalidParameterError, match="did you mean 'batch_size'"):
        HybridRetriever.from_texts(["t"], batchsize=8)
    with pytest.raises(InvalidParameterError, match="did you mean 'metadatas'"):
        HybridVectorStore.from_texts(["t"], metadata_list=[{}])


def test_langchain_and_connection_arguments_still_work(tmp_path: Any) -> None:
    retriever = HybridRetriever(
        path=str(tmp_path / "q"),
        engine="edge",
        tags=["hybrid"],
        metadata={"team": "search"},
        name="mine",
        fusion_config=None,
        k=3,
    )
    try:
        assert retriever.tags == ["hybrid"] and retriever.metadata == {"team": "search"}
        store = HybridVectorStore(retriever=retriever)
        assert store.as_retriever(search_kwargs={"k": 2}, tags=["x"]).k == 2
        with pytest.raises(InvalidParameterError, match="did you mean 'k'"):
            store.as_retriever(search_kwargs={"top_k": 2})
    finally:
        retriever.close()
    HybridRetriever(location=":memory:").close()


# -- metadata comes back as given, or is refused -------------------------------------------------

METADATA_ERRORS = [
    pytest.param(
        {"x": 2**70}, r"metadata\['x'\] is the integer 1180591620717411303424", id="2**70"
    ),
    pytest.param({"x": 2**63}, r"metadata\['x'\] is the integer", id="2**63"),
    pytest.param({"x": -(2**63) - 1}, r"metadata\['x'\] is the integer", id="-2**63-1"),
    pytest.param({"a": [1, {"b": 2**64}]}, r"metadata\['a'\]\[1\]\['b'\]", id="nested-big-int"),
    pytest.param({"f": [1.0, math.inf]}, r"metadata\['f'\]\[1\] is inf", id="inf"),
    pytest.param({"f": math.nan}, r"metadata\['f'\] is nan", id="nan"),
]


@pytest.mark.parametrize(("metadata", "message"), METADATA_ERRORS)
def test_metadata_that_would_come_back_altered_is_refused(
    make_retriever: MakeRetriever, engine: str, metadata: dict[str, Any], message: str
) -> None:
    """Before: Edge returned 2**70 as the float 1.1805916207174112e+21 (qdrant-client kept it)."""
    retriever = make_retriever(engine=engine)
    retriever.add_texts(["already here"], show_progress=False)
    with pytest.raises(InvalidDocumentError, match=message) as raised:
        retriever.add_documents([Document(page_content="t", metadata=metadata)])
    assert "Document at position 0" in str(raised.value)
    if "integer" in message:
        assert "str(value)" in str(raised.value)
    assert retriever.count() == 1


@pytest.mark.parametrize(
    ("metadata", "doc_id", "message"),
    [
        pytest.param({"a": "x\ud800"}, None, r"metadata\['a'\] has an invalid", id="value"),
        pytest.param({"k\udc00": 1}, None, r"a key of .*metadata has an invalid", id="key"),
        pytest.param({}, "id\udc00", r"its id has an invalid", id="id"),
    ],
)
def test_a_lone_surrogate_is_refused_not_a_unicode_error(
    make_retriever: MakeRetriever,
    engine: str,
    metadata: dict[str, Any],
    doc_id: str | None,
    message: str,
) -> None:
    """Before: a bare UnicodeEncodeError from the engine's write, on both engines."""
    retriever = make_retriever(engine=engine)
    with pytest.raises(InvalidDocumentError, match=message):
        retriever.add_documents([Document(id=doc_id, page_content="t", metadata=metadata)])


def test_64_bit_integers_come_back_exact(make_retriever: MakeRetriever, engine: str) -> None:
    retriever = make_retriever(engine=engine)
    metadata = {"max": 2**63 - 1, "min": -(2**63), "list": [2**53 + 1, -(2**62)]}
    retriever.add_documents([Document(id="d", page_content="t", metadata=metadata)])
    assert retriever.get_by_ids(["d"])[0].metadata == metadata


def _nested(depth: int) -> dict[str, Any]:
    """A dict nesting ``depth`` dicts, itself included."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_deep_metadata_is_refused_not_a_recursion_error(
    make_retriever: MakeRetriever, engine: str
) -> None:
    """Before: a bare RecursionError."""
    retriever = make_retriever(engine=engine)
    with pytest.raises(InvalidDocumentError, match="nested more than 64 levels"):
        retriever.add_documents([Document(page_content="t", metadata=_nested(2000))])
    with pytest.raises(InvalidDocumentError, match="nested more than 64 levels"):
        retriever.add_documents([Document(page_content="t", metadata=_nested(65))])
    retriever.add_documents([Document(id="ok", page_content="t", metadata=_nested(64))])
    assert retriever.get_by_ids(["ok"])[0].metadata == _nested(64)


# -- collections that carry the removed calibration ----------------------------------------------

OLD_CALIBRATION = {  # StoredCalibration.to_json() as hybrid_retriever wrote it in Nov 2026
    "points": 2,
    "dense_encoder": "all-MiniLM-L6-v2",
    "sparse_encoder": "splade-tiny",
    "calibration": {
        "known_item_mrr@10": {"dense": 0.5, "sparse": 0.9},
        "weights": {"dense": 0.2358, "sparse": 0.7642},
        "queries": 20,
    },
    "skipped": None,
}


def _store_old_calibration(retriever: HybridRetriever, record: dict[str, Any]) -> None:
    """Where the calibration release stored it: a file beside the Edge shard, or the
    collection's metadata."""
    import json

    from hybrid_retriever.storage.edge import EdgeStorage

    storage: Any = retriever.storage
    if isinstance(storage, EdgeStorage):
        path = storage.root / retriever.collection_name / "hybrid_retriever.json"
        path.write_text(json.dumps({"hybrid_retriever.calibration": record}), encoding="utf-8")
    else:
        storage.client.update_collection(
            retriever.collection_name, metadata={"hybrid_retriever.calibration": record}
        )


@pytest.mark.parametrize("search", ["invoke", "ainvoke"])
def test_a_stored_calibration_is_not_ignored_without_a_word(
    make_retriever: MakeRetriever, engine: str, tmp_path: Any, search: str
) -> None:
    """Before: the weights were silently ignored and rankings changed."""
    from hybrid_retriever.stored_calibration import StoredCalibrationWarning

    writer = make_retriever(path=str(tmp_path), engine=engine)
    writer.add_texts(GOOD, show_progress=False)
    _store_old_calibration(writer, OLD_CALIBRATION)
    writer.close()
    reader = make_retriever(path=str(tmp_path), engine=engine)

    def run(query: str) -> list[Document]:
        if search == "ainvoke":
            return asyncio.run(reader.ainvoke(query))
        return reader.invoke(query)

    with pytest.warns(StoredCalibrationWarning) as caught:
        run("bread")
    # An old collection has no model record either: that warning comes beside this one.
    (message,) = [str(w.message) for w in caught if w.category is StoredCalibrationWarning]
    assert "{'dense': 0.236, 'sparse': 0.764}" in message and 'fusion="adaptive"' in message
    with warnings.catch_warnings():
        warnings.simplefilter("error", StoredCalibrationWarning)
        run("bread again")  # once per retriever
    reader.close()
    as_before = {"fusion": "adaptive", "weights": {"dense": 0.236, "sparse": 0.764}}
    again = make_retriever(path=str(tmp_path), engine=engine, **as_before)
    with warnings.catch_warnings():  # weights set: what the calibration never overrode
        warnings.simplefilter("error", StoredCalibrationWarning)
        assert again.invoke("bread", k=1)[0].page_content == GOOD[0]


def test_no_warning_without_calibrated_weights(
    make_retriever: MakeRetriever, engine: str, tmp_path: Any
) -> None:
    from hybrid_retriever.stored_calibration import StoredCalibrationWarning

    for name in ("plain", "skipped"):  # one at a time: qdrant-client locks its folder
        writer = make_retriever(path=str(tmp_path), engine=engine, collection_name=name)
        writer.add_texts(GOOD, show_progress=False)
        if name == "skipped":  # too few documents to calibrate: no weights were stored
            record = {**OLD_CALIBRATION, "calibration": None, "skipped": "few"}
            _store_old_calibration(writer, record)
        writer.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", StoredCalibrationWarning)
        for name in ("plain", "skipped"):
            reader = make_retriever(path=str(tmp_path), engine=engine, collection_name=name)
            reader.invoke("bread")
            reader.close()
