"""Quantisation and on-disk settings: created, kept by the engine, reopened without them."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from langchain_core.documents import Document

from hybrid_retriever import (
    CollectionMismatchError,
    InvalidParameterError,
    Quantization,
    VectorStorage,
)
from hybrid_retriever.collection import (
    CollectionLayout,
    CollectionSpec,
    DenseVectorInfo,
    Distance,
    SparseVectorInfo,
    check_layout,
)

INT8 = VectorStorage(quantization="int8", dense_on_disk=True, oversampling=2.0, hnsw_ef=64)  # type: ignore[arg-type]


def _documents(documents: list[Document]) -> list[Document]:
    return documents[:8]


def test_int8_round_trips_on_each_engine(
    engine: str, make_retriever: object, documents: list[Document], tmp_path: Path
) -> None:
    """Created with int8 on disk, reopened with no argument: the same storage, searchable."""
    path = str(tmp_path / "db")
    built = make_retriever(  # type: ignore[operator]
        collection_name="q", engine=engine, path=path, vector_storage=INT8, k=3
    )
    built.add_documents(_documents(documents), show_progress=False)
    expected = [d.metadata["_id"] for d in built.invoke("vector search")]
    built.close()

    reopened = make_retriever(collection_name="q", engine=engine, path=path, k=3)  # type: ignore[operator]
    layout = reopened.storage.get_layout("q")
    assert layout.dense["dense"].storage == INT8
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # embedded qdrant-client warns if sent search params
        found = [d.metadata["_id"] for d in reopened.invoke("vector search")]
    assert found == expected
    assert len(found) == 3


def test_edge_keeps_quantisation_in_its_own_configuration(
    make_retriever: object, documents: list[Document], tmp_path: Path
) -> None:
    """The engine itself (not only this package's metadata) holds the storage settings."""
    path = tmp_path / "db"
    retriever = make_retriever(  # type: ignore[operator]
        collection_name="b",
        path=str(path),
        vector_storage=VectorStorage(quantization=Quantization.BINARY, hnsw_on_disk=True),
    )
    retriever.add_documents(_documents(documents), show_progress=False)
    assert len(retriever.invoke("vector search")) == 4
    config = json.loads((path / "b" / "edge_config.json").read_text())
    dense = config["vectors"]["dense"]
    assert set(dense["quantization_config"]) == {"binary"}
    assert dense["hnsw_config"]["memory"] == "cold"
    assert "memory" not in dense  # the originals stay where the default keeps them


def test_default_collection_config_is_unchanged(
    make_retriever: object, documents: list[Document], tmp_path: Path
) -> None:
    path = tmp_path / "db"
    retriever = make_retriever(collection_name="d", path=str(path))  # type: ignore[operator]
    retriever.add_documents(_documents(documents)[:2], show_progress=False)
    dense = json.loads((path / "d" / "edge_config.json").read_text())["vectors"]["dense"]
    assert dense == {"size": 384, "distance": "Cosine"}
    assert retriever.storage.get_layout("d").dense["dense"].storage == VectorStorage()


def test_reopening_with_other_storage_is_refused(
    engine: str, make_retriever: object, documents: list[Document], tmp_path: Path
) -> None:
    path = str(tmp_path / "db")
    built = make_retriever(  # type: ignore[operator]
        collection_name="q", engine=engine, path=path, vector_storage=INT8
    )
    built.add_documents(_documents(documents)[:2], show_progress=False)
    built.close()
    other = make_retriever(  # type: ignore[operator]
        collection_name="q", engine=engine, path=path, vector_storage=VectorStorage()
    )
    with pytest.raises(CollectionMismatchError, match="quantization='int8' \\(asked: 'none'\\)"):
        other.invoke("vector search")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantization": "int4"}, "quantization='int4' is not a quantisation"),
        ({"oversampling": 0.5}, "oversampling=0.5 must be a number >= 1"),
        ({"oversampling": float("nan")}, "oversampling=nan"),
        ({"hnsw_ef": 0}, "hnsw_ef=0 must be a positive integer"),
        ({"dense_on_disk": "yes"}, "dense_on_disk='yes' must be True or False"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        VectorStorage(**kwargs)  # type: ignore[arg-type]


def test_a_mode_name_is_not_a_vector_storage(make_retriever: object) -> None:
    with pytest.raises(InvalidParameterError, match="VectorStorage\\(quantization='int8'\\)"):
        make_retriever(vector_storage="int8")  # type: ignore[operator]


def test_storage_check_on_hand_made_layouts() -> None:
    spec = CollectionSpec("c", "dense", 384, Distance.COSINE, "sparse", storage=INT8)
    layout = CollectionLayout(
        dense={"dense": DenseVectorInfo(384, Distance.COSINE, storage=None)},
        sparse={"sparse": SparseVectorInfo()},
    )
    with pytest.raises(CollectionMismatchError, match="does not describe"):
        check_layout(spec, layout, encoder_name="m")
    unasked = CollectionSpec("c", "dense", 384, Distance.COSINE, "sparse")
    check_layout(unasked, layout, encoder_name="m")  # None: the collection's own


def test_a_server_would_be_sent_the_search_settings(
    make_retriever: object, documents: list[Document], tmp_path: Path
) -> None:
    """The search params read back from a real collection's info, as a server's search gets
    them (embedded qdrant-client gets none: it searches exactly)."""
    from hybrid_retriever.storage.qdrant import _search_params

    retriever = make_retriever(  # type: ignore[operator]
        collection_name="q", engine="qdrant-client", path=str(tmp_path), vector_storage=INT8
    )
    retriever.add_documents(_documents(documents)[:2], show_progress=False)
    params = _search_params(retriever.storage.client.get_collection("q"))
    assert set(params) == {"dense"}
    assert params["dense"].hnsw_ef == 64
    assert params["dense"].quantization is not None
    assert params["dense"].quantization.rescore is True
    assert params["dense"].quantization.oversampling == 2.0


def test_a_copied_collection_keeps_its_storage_settings(
    make_retriever: object, documents: list[Document], tmp_path: Path
) -> None:
    """copy_collection creates the target with the source's quantisation and on-disk
    settings, so a copy is not silently a bigger (or differently searched) collection."""
    from hybrid_retriever.move import copy_collection

    source = make_retriever(  # type: ignore[operator]
        collection_name="q", path=str(tmp_path / "a"), vector_storage=INT8, k=3
    )
    source.add_documents(_documents(documents), show_progress=False)
    source.close()
    copy_collection(
        "q",
        source={"path": str(tmp_path / "a")},
        target={"path": str(tmp_path / "b")},
        verify_queries=3,
        show_progress=False,
    )
    copied = make_retriever(collection_name="q", path=str(tmp_path / "b"), k=3)  # type: ignore[operator]
    assert copied.storage.get_layout("q").dense["dense"].storage == INT8
