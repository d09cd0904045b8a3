"""BM25 as the third branch of the retriever, on by default for new collections, on both
embedded engines, real models.

The corpus is built so that only BM25 can find the answer: the one document that names
"Vandermolen" names it after ~1,000 words of gardening, past what the dense model (256
tokens) and SPLADE read, while BM25 reads the whole text; the other documents are close
in spelling or topic, so the two model branches rank them above it.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document

from hybrid_retriever import HybridRetriever, HybridVectorStore
from hybrid_retriever.encoders.bm25 import Bm25Encoder
from hybrid_retriever.errors import CollectionMismatchError, InvalidParameterError
from hybrid_retriever.fusion.branches import ALL_BRANCHES, BM25, DENSE, SPARSE
from hybrid_retriever.fusion.config import FusionConfig
from hybrid_retriever.fusion.methods import fuse
from hybrid_retriever.fusion.query_length import query_length_weights
from hybrid_retriever.fusion.rrf import BranchHit
from hybrid_retriever.search_options import resolve_search_options

GARDENING = "Gardeners water tomato plants in the morning and mulch the beds to keep soil moist."
TEXTS = {
    "answer": " ".join([GARDENING] * 60) + " The shed key is kept by Mrs Vandermolen.",
    "vanderbilt": "The Vanderbilt family kept a large garden shed.",
    "van-der-meer": "Van der Meer stores keys under the doormat.",
    "vandermeer": "The Vandermeer shed holds garden tools.",
    "molen": "Molen is the Dutch word for mill.",
}
QUERY = "Vandermolen"


def documents() -> list[Document]:
    return [Document(page_content=text, id=doc_id) for doc_id, text in TEXTS.items()]


@pytest.fixture()
def build(tmp_path: Path, engine: str, make_retriever: Any) -> Iterator[Any]:
    """Retrievers over collection "garden" in a fresh folder, sharing one open storage per
    folder (an embedded engine opens a folder once)."""
    storages: dict[str, Any] = {}

    def make(**kwargs: Any) -> HybridRetriever:
        path = kwargs.pop("path", str(tmp_path / "qdrant"))
        if path in storages:
            kwargs["storage"] = storages[path]
        else:
            kwargs.update(engine=engine, path=path)
        kwargs.setdefault("collection_name", "garden")
        retriever: HybridRetriever = make_retriever(**kwargs)
        storages.setdefault(path, retriever.storage)
        return retriever

    yield make


def index(retriever: HybridRetriever) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the long answer is cut by both models: expected
        retriever.add_documents(documents(), show_progress=False)


def ids(found: list[Document]) -> list[str | None]:
    return [d.id for d in found]


def test_bm25_finds_the_exact_term_the_models_cannot_see(build: Any) -> None:
    retriever = build(bm25_encoder=True)
    index(retriever)

    layout = retriever.storage.get_layout("garden")
    assert layout is not None and layout.sparse[BM25].idf_modifier
    assert not layout.sparse[SPARSE].idf_modifier

    # Every branch of the retriever, by default: three ranks and three raw scores each.
    found = retriever.invoke(QUERY, k=5)
    for document in found:
        assert set(document.metadata["_ranks"]) == set(ALL_BRANCHES)
        assert set(document.metadata["_scores"]) == set(ALL_BRANCHES)
    answer = found[ids(found).index("answer")]
    assert answer.metadata["_ranks"][BM25] == 1  # BM25 alone finds it first ...
    assert answer.metadata["_ranks"][SPARSE] is None  # ... SPLADE not at all

    # With BM25 beside dense, the answer comes first; the two model branches bury it.
    with_bm25 = retriever.invoke(QUERY, k=5, branches=[DENSE, BM25])
    assert ids(with_bm25)[0] == "answer"
    assert set(with_bm25[0].metadata["_ranks"]) == {DENSE, BM25}
    without = retriever.invoke(QUERY, k=5, branches=(DENSE, SPARSE))
    assert ids(without)[0] != "answer"
    assert set(without[0].metadata["_ranks"]) == {DENSE, SPARSE}

    # A per-query subset of one branch.
    only_bm25 = retriever.invoke(QUERY, k=5, branches=["bm25"])
    assert ids(only_bm25) == ["answer"]
    assert only_bm25[0].metadata["_ranks"] == {BM25: 1}

    # batch and ainvoke take the same option.
    assert ids(retriever.batch([QUERY], branches=[DENSE, BM25], k=5)[0]) == ids(with_bm25)
    assert ids(asyncio.run(retriever.ainvoke(QUERY, k=5, branches=[DENSE, BM25]))) == ids(with_bm25)


def test_branches_set_on_the_retriever(build: Any) -> None:
    index(build(bm25_encoder=True))
    retriever = build(bm25_encoder=True, branches=("dense", "bm25"))
    assert ids(retriever.invoke(QUERY, k=5))[0] == "answer"
    assert set(retriever.invoke(QUERY, k=5)[0].metadata["_ranks"]) == {DENSE, BM25}


def test_stopword_only_query_skips_bm25(build: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    retriever = build(bm25_encoder=True)
    index(retriever)
    assert retriever.bm25_encoder is not None
    assert len(retriever.bm25_encoder.encode_query("the of and")) == 0
    searched: list[str] = []
    real_search = retriever.storage.search

    def recording_search(collection: str, queries: Any, *args: Any, **kwargs: Any) -> Any:
        searched.extend(q.vector_name for q in queries)
        return real_search(collection, queries, *args, **kwargs)

    monkeypatch.setattr(retriever.storage, "search", recording_search)
    found = retriever.invoke("the of and", k=3)
    assert found  # the model branches still answer
    assert all(d.metadata["_ranks"][BM25] is None for d in found)
    assert BM25 not in searched  # the empty vector was never sent
    assert retriever.invoke("the of and", k=3, branches=["bm25"]) == []


def test_two_branch_collection_asked_for_bm25(build: Any) -> None:
    index(build(bm25_encoder=False))  # dense + SPLADE only
    with pytest.raises(
        CollectionMismatchError, match=r"no sparse vector named 'bm25'.*cannot add.*copy_with_bm25"
    ):
        build(bm25_encoder=True).invoke(QUERY)
    with pytest.raises(CollectionMismatchError, match="no sparse vector named 'bm25'"):
        build(bm25_encoder="english").add_texts(["more"], show_progress=False)
    with pytest.raises(CollectionMismatchError, match="copy_with_bm25"):
        asyncio.run(build(bm25_encoder=True).ainvoke(QUERY))
    plain = build()  # the default opens it as written: two branches
    with pytest.raises(InvalidParameterError, match=r"no BM25 branch.*copy_with_bm25"):
        plain.invoke(QUERY, branches=["dense", "bm25"])
    with pytest.raises(InvalidParameterError, match="no BM25 branch"):
        build(bm25_encoder=False, branches=("bm25",))
    # Set on the retriever: checked when the collection is first looked at.
    with pytest.raises(InvalidParameterError, match="no BM25 branch"):
        build(branches=("bm25",)).invoke(QUERY)
    with pytest.raises(InvalidParameterError, match="no BM25 branch"):
        asyncio.run(build(branches=("dense", "bm25")).ainvoke(QUERY))
    assert plain.count() == len(TEXTS)  # nothing was changed
    layout = plain.storage.get_layout("garden")
    assert layout is not None and set(layout.sparse) == {SPARSE}


def test_a_new_collection_gets_bm25_by_default(build: Any) -> None:
    retriever = build()  # bm25_encoder unset
    index(retriever)
    layout = retriever.storage.get_layout("garden")
    assert layout is not None and set(layout.sparse) == {SPARSE, BM25}
    assert layout.sparse[BM25].idf_modifier
    record = retriever.storage.read_collection_record("garden")
    assert record is not None
    assert record["vectors"][BM25]["identity"] == Bm25Encoder().identity()  # k1 1.2
    assert isinstance(retriever.bm25_encoder, Bm25Encoder)
    found = retriever.invoke(QUERY, k=5)
    assert all(set(d.metadata["_ranks"]) == set(ALL_BRANCHES) for d in found)
    assert found[ids(found).index("answer")].metadata["_ranks"][BM25] == 1
    # A second retriever over it, searched first asynchronously, and in a batch.
    again = asyncio.run(build().ainvoke(QUERY, k=5))
    assert all(set(d.metadata["_ranks"]) == set(ALL_BRANCHES) for d in again)
    (batched,) = build().batch([QUERY], k=5)
    assert [(d.id, d.metadata["_ranks"]) for d in batched] == [
        (d.id, d.metadata["_ranks"]) for d in found
    ]


def test_a_new_collection_written_asynchronously_gets_bm25(build: Any) -> None:
    retriever = build()

    async def write() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await retriever.aadd_documents(documents(), show_progress=False)

    asyncio.run(write())
    layout = retriever.storage.get_layout("garden")
    assert layout is not None and set(layout.sparse) == {SPARSE, BM25}
    assert ids(retriever.invoke(QUERY, k=1, branches=["bm25"])) == ["answer"]


def test_vector_store_creates_bm25_by_default(build: Any, engine: str, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the long answer is cut by both models: expected
        store = HybridVectorStore.from_texts(
            list(TEXTS.values()),
            ids=list(TEXTS),
            collection_name="store",
            engine=engine,
            path=str(tmp_path / "store"),
            dense_encoder=build().dense_encoder,
            sparse_encoder=build().sparse_encoder,
            show_progress=False,
        )
    try:
        layout = store.retriever.storage.get_layout("store")
        assert layout is not None and BM25 in layout.sparse
        assert store.similarity_search(QUERY, k=1, branches=["bm25"])[0].id == "answer"
    finally:
        store.close()


def test_two_branch_collection_reopens_with_the_default(
    build: Any, caplog: pytest.LogCaptureFixture
) -> None:
    written = build(bm25_encoder=False)
    index(written)
    expected = written.invoke(QUERY, k=5)
    caplog.set_level(logging.INFO, logger="hybrid_retriever.retriever")

    reopened = build()  # the default: BM25 if the collection has it
    found = reopened.invoke(QUERY, k=5)
    assert reopened.bm25_encoder is None
    assert [(d.id, d.metadata["_ranks"], d.metadata["_score"]) for d in found] == [
        (d.id, d.metadata["_ranks"], d.metadata["_score"]) for d in expected
    ]
    assert reopened.invoke(QUERY, k=5) == found
    notes = [r.getMessage() for r in caplog.records if "no BM25 vector" in r.getMessage()]
    assert len(notes) == 1 and "copy_with_bm25" in notes[0]  # said once, with the fix
    assert all(r.levelno == logging.INFO for r in caplog.records if "BM25" in r.getMessage())
    # Writes keep the collection as it is: two branches.
    reopened.add_texts(["Mrs Vandermolen also keeps the gate key."], show_progress=False)
    layout = reopened.storage.get_layout("garden")
    assert layout is not None and set(layout.sparse) == {SPARSE}
    assert reopened.count() == len(TEXTS) + 1
    # The async path, and a writer opened with the default first, resolve the same way.
    found_async = asyncio.run(build().ainvoke(QUERY, k=5))
    assert all(set(d.metadata["_ranks"]) == {DENSE, SPARSE} for d in found_async)
    writer = build()
    writer.add_texts(["The gate key hangs by the door."], show_progress=False)
    assert writer.bm25_encoder is None and writer.count() == len(TEXTS) + 2


def test_collection_written_with_other_bm25_settings_reopens_with_them(build: Any) -> None:
    index(build(bm25_encoder=Bm25Encoder(k1=0.9)))  # as before the BM25 study's k1 1.2
    record = build().storage.read_collection_record("garden")
    assert record is not None and record["vectors"][BM25]["identity"]["k1"] == 0.9

    for setting in ({}, {"bm25_encoder": True}):  # unset, and BM25 required
        reopened = build(**setting)
        found = reopened.invoke(QUERY, k=5)
        assert isinstance(reopened.bm25_encoder, Bm25Encoder)
        assert reopened.bm25_encoder.identity() == Bm25Encoder(k1=0.9).identity()
        assert set(found[0].metadata["_ranks"]) == set(ALL_BRANCHES)
        assert found[ids(found).index("answer")].metadata["_ranks"][BM25] == 1
    found_async = asyncio.run(build().ainvoke(QUERY, k=1, branches=["bm25"]))
    assert ids(found_async) == ["answer"]

    # A write through the default writes BM25 weights at k1 0.9, and keeps the record.
    writer = build()
    writer.add_texts(
        ["Mrs Vandermolen also keeps the gate key."], ids=["gate"], show_progress=False
    )
    assert writer.storage.read_collection_record("garden") == record
    (point,) = [
        p
        for batch in writer.storage.scroll_points("garden", batch_size=100)
        for p in batch
        if p.payload.get("document_id") == "gate"
    ]
    (k1_09,) = Bm25Encoder(k1=0.9).encode_documents(["Mrs Vandermolen also keeps the gate key."])
    assert point.vectors[BM25].indices == k1_09.indices
    assert point.vectors[BM25].values == pytest.approx(k1_09.values, rel=1e-6)

    # Settings named explicitly are held to the record, with the way out in the message.
    with pytest.raises(
        CollectionMismatchError,
        match=r"k1 0\.9 recorded, 1\.2 now.*leave bm25_encoder unset",
    ):
        build(bm25_encoder=Bm25Encoder()).invoke(QUERY)


def test_custom_stopwords_are_not_guessed(build: Any) -> None:
    index(build(bm25_encoder=Bm25Encoder(stopwords=["the", "a"])))
    with pytest.raises(CollectionMismatchError, match=r"stopwords of its own.*bm25_encoder=False"):
        build().invoke(QUERY)
    same = build(bm25_encoder=Bm25Encoder(stopwords=["a", "the"]))
    assert ids(same.invoke(QUERY, k=1, branches=["bm25"])) == ["answer"]
    assert build(bm25_encoder=False).invoke(QUERY, k=1)  # its two model branches


def test_bad_bm25_encoder_value() -> None:
    with pytest.raises(InvalidParameterError, match=r"bm25_encoder must be left unset.*False"):
        HybridRetriever(bm25_encoder=3, location=":memory:", engine="qdrant-client")
    with pytest.raises(InvalidParameterError, match="not supported"):
        HybridRetriever(bm25_encoder="klingon", location=":memory:", engine="qdrant-client")


def test_model_record_refuses_other_bm25_settings(build: Any) -> None:
    index(build(bm25_encoder=True))
    record = build().storage.read_collection_record("garden")
    assert record is not None
    entry = record["vectors"][BM25]
    assert entry["identity"] == Bm25Encoder().identity()
    assert entry["probes"] == []  # an exact identity needs no probe vectors

    other_k1 = build(bm25_encoder=Bm25Encoder(k1=0.9))
    with pytest.raises(
        CollectionMismatchError, match=r"bm25 vector 'bm25'.*k1 1\.2 recorded, 0\.9"
    ):
        other_k1.invoke(QUERY)
    with pytest.raises(CollectionMismatchError, match="k1"):
        other_k1.add_texts(["more"], show_progress=False)
    with pytest.raises(CollectionMismatchError, match="language 'english' recorded, 'german'"):
        build(bm25_encoder="german").invoke(QUERY)
    # The same settings pass.
    assert ids(build(bm25_encoder=Bm25Encoder(k1=1.2)).invoke(QUERY, k=1, branches=["bm25"])) == [
        "answer"
    ]


def test_without_bm25_layout_and_results_unchanged(build: Any, tmp_path: Path) -> None:
    plain = build(bm25_encoder=False)
    index(plain)
    layout = plain.storage.get_layout("garden")
    assert layout is not None and set(layout.sparse) == {SPARSE}
    record = plain.storage.read_collection_record("garden")
    assert record is not None and set(record["vectors"]) == {DENSE, SPARSE}
    found = plain.invoke(QUERY, k=5)
    assert all(set(d.metadata["_ranks"]) == {DENSE, SPARSE} for d in found)

    # The same two branches searched in a three-branch collection give the same results.
    three = build(path=str(tmp_path / "three"))
    index(three)
    same = three.invoke(QUERY, k=5, branches=[DENSE, SPARSE])
    assert [(d.id, d.metadata["_score"], d.metadata["_ranks"]) for d in same] == [
        (d.id, d.metadata["_score"], d.metadata["_ranks"]) for d in found
    ]


# -- the option's validation and the fusion config (pure logic) ---------------------------


def options(**overrides: Any) -> Any:
    return resolve_search_options(
        k=4,
        prefetch_k=None,
        fusion="convex",
        rrf_k=60,
        weights=None,
        query_filter=None,
        available=ALL_BRANCHES,
        overrides=overrides,
    )


def test_branches_option_is_checked() -> None:
    assert options().branches == ALL_BRANCHES
    assert options(branches=["bm25", "dense"]).branches == (DENSE, BM25)  # canonical order
    with pytest.raises(InvalidParameterError, match="unknown branches \\['splade'\\]"):
        options(branches=["splade"])
    with pytest.raises(InvalidParameterError, match="branches is empty"):
        options(branches=[])
    with pytest.raises(InvalidParameterError, match="list of branch names"):
        options(branches="bm25")
    with pytest.raises(InvalidParameterError, match="unknown branches \\['bm25'\\]"):
        options(branches=["dense", "sparse"], weights={"bm25": 1.0})
    assert options(branches=["dense", "bm25"], weights={"bm25": 2.0}).weights == {
        DENSE: 1.0,
        BM25: 2.0,
    }


def test_fusion_config_takes_bm25() -> None:
    config = FusionConfig(weights={"dense": 0.5, "bm25": 0.25})
    assert config.weights == {DENSE: 0.5, SPARSE: 1.0, BM25: 0.25}
    assert "'bm25': 0.25" in config.describe()
    assert FusionConfig(weights={"dense": 0.6, "sparse": 0.4}).weights == {
        DENSE: 0.6,
        SPARSE: 0.4,
    }  # a two-branch config stays two-branch
    rankings = {
        DENSE: [BranchHit("a", 3.0), BranchHit("b", 2.0)],
        SPARSE: [BranchHit("b", 12.0), BranchHit("a", 4.0)],
        BM25: [BranchHit("c", 20.0), BranchHit("a", 15.0)],
    }
    query = "a short query"
    expected = fuse(rankings, weights=query_length_weights(query, branches=ALL_BRANCHES))
    assert FusionConfig().fuse(rankings, query=query) == expected


# -- collections written before BM25 ------------------------------------------------------


def test_qdrant_cannot_add_a_vector_to_an_existing_collection() -> None:
    """Why copy_with_bm25 copies: the engine refuses a new named vector (if a later
    qdrant-client allows it, this fails and the copy can become an update)."""
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection(
        "old", vectors_config={}, sparse_vectors_config={"sparse": models.SparseVectorParams()}
    )
    with pytest.raises(ValueError, match="bm25 does not exist"):
        client.update_collection(
            "old",
            sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )


def test_copy_with_bm25_adds_the_branch_without_re_encoding(
    build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybrid_retriever.add_bm25 import copy_with_bm25

    index(build(bm25_encoder=False))
    source = build()  # opened with the default, as a user upgrading would
    before = source.invoke(QUERY, k=5)

    def no_model(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a model ran during the copy")

    monkeypatch.setattr(source.dense_encoder, "encode_documents", no_model)
    monkeypatch.setattr(source.sparse_encoder, "encode_documents", no_model)
    copy = copy_with_bm25(source, "garden-bm25", show_progress=False)
    monkeypatch.undo()

    assert copy.count() == source.count() == len(TEXTS)
    assert ids(copy.invoke(QUERY, k=5, branches=[DENSE, BM25]))[0] == "answer"
    # The stored dense and SPLADE vectors came across: the two model branches rank alike.
    same = copy.invoke(QUERY, k=5, branches=[DENSE, SPARSE])
    assert [(d.id, d.metadata["_ranks"]) for d in same] == [
        (d.id, d.metadata["_ranks"]) for d in before
    ]
    for a, b in zip(same, before, strict=True):
        assert a.metadata["_score"] == pytest.approx(b.metadata["_score"], abs=1e-6)
        assert a.page_content == b.page_content and a.metadata["_id"] == b.metadata["_id"]
    # The old collection is as it was; the copy reopens with BM25 and its identity recorded.
    layout = source.storage.get_layout("garden")
    assert layout is not None and set(layout.sparse) == {SPARSE}
    reopened = build(collection_name="garden-bm25")
    assert ids(reopened.invoke(QUERY, k=1, branches=["bm25"])) == ["answer"]
    assert (
        reopened.storage.read_collection_record("garden-bm25")["vectors"][BM25]["identity"]
        == Bm25Encoder().identity()
    )
    with pytest.raises(CollectionMismatchError, match="k1"):
        build(bm25_encoder=Bm25Encoder(k1=2.0), collection_name="garden-bm25").invoke(QUERY)
    # Running it again (as after a crash) overwrites, never duplicates.
    again = copy_with_bm25(source, "garden-bm25", show_progress=False)
    assert again.count() == len(TEXTS)
    with pytest.raises(InvalidParameterError, match="new collection_name"):
        copy_with_bm25(source, "garden")
    with pytest.raises(InvalidParameterError, match="BM25 branch already"):
        copy_with_bm25(reopened, "garden-bm25-again")


def test_writing_without_bm25_into_a_three_branch_collection_is_refused(build: Any) -> None:
    index(build())
    plain = build(bm25_encoder=False)
    assert plain.invoke(QUERY, k=1)  # reading with the two model branches is fine
    with pytest.raises(CollectionMismatchError, match="missing from BM25 results"):
        plain.add_texts(["Mrs Vandermolen also keeps the gate key."], show_progress=False)
    assert plain.count() == len(TEXTS)


def test_a_two_branch_fusion_config_stays_two_branch(build: Any, tmp_path: Path) -> None:
    """A config tuned on dense and SPLADE, loaded over a collection with BM25 (the new
    default), fuses those two as tuned rather than adding BM25 at weight 1."""
    index(build())
    two = FusionConfig(weights={"dense": 0.6, "sparse": 0.4}).save(tmp_path / "two.json")
    found = build(fusion_config=two).invoke(QUERY, k=5)
    assert all(set(d.metadata["_ranks"]) == {DENSE, SPARSE} for d in found)
    assert [(d.id, d.metadata["_score"]) for d in found] == [
        (d.id, d.metadata["_score"])
        for d in build().invoke(
            QUERY, k=5, branches=[DENSE, SPARSE], weights={"dense": 0.6, "sparse": 0.4}
        )
    ]
    three = FusionConfig(weights={"dense": 0.5, "sparse": 0.2, "bm25": 0.3})
    found = build(fusion_config=three.save(tmp_path / "three.json")).invoke(QUERY, k=5)
    assert all(set(d.metadata["_ranks"]) == set(ALL_BRANCHES) for d in found)
    # Explicit weights win over the config's, and with them its branches.
    explicit = build(fusion_config=two, weights={"dense": 1.0, "sparse": 1.0, "bm25": 1.0})
    assert set(explicit.invoke(QUERY, k=1)[0].metadata["_ranks"]) == set(ALL_BRANCHES)


def test_the_collection_is_looked_at_when_first_needed(build: Any) -> None:
    """A retriever opened before its collection exists: searches say it does not exist
    (sync and async) and settle nothing; once another writer has created it without BM25,
    the same retriever searches its two branches."""
    from hybrid_retriever.errors import CollectionNotFoundError

    early = build()
    with pytest.raises(CollectionNotFoundError):
        early.invoke(QUERY)
    with pytest.raises(CollectionNotFoundError):
        asyncio.run(early.ainvoke(QUERY))
    assert early.bm25_encoder == "auto"  # still to be decided
    index(build(bm25_encoder=False))
    found = early.invoke(QUERY, k=3)
    assert early.bm25_encoder is None
    assert all(set(d.metadata["_ranks"]) == {DENSE, SPARSE} for d in found)


def test_resolved_once_then_no_extra_round_trip(
    build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    index(build())
    retriever = build()
    retriever.invoke(QUERY)  # the first search looks at the collection
    looked: list[str] = []
    for name in ("get_layout", "read_collection_record", "aget_layout", "aread_collection_record"):
        real = getattr(retriever.storage, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            looked.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(retriever.storage, name, spy)
    retriever.invoke("another question")
    retriever.batch(["one", "two"])
    asyncio.run(retriever.ainvoke("a third"))
    assert looked == []
