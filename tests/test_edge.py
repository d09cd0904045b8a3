"""Qdrant Edge specifics: on-disk reuse, locking, filter translation, refusals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from qdrant_client import models

from hybrid_retriever import (
    CollectionMismatchError,
    HybridRetriever,
    InvalidParameterError,
    StorageError,
)
from hybrid_retriever.collection import CollectionSpec, Distance
from hybrid_retriever.storage.edge import EdgeStorage
from hybrid_retriever.storage.edge_filters import to_edge_filter

MakeRetriever = Callable[..., HybridRetriever]


def test_default_embedded_engine_is_edge(make_retriever: MakeRetriever, tmp_path: Path) -> None:
    assert isinstance(make_retriever().storage, EdgeStorage)
    assert isinstance(make_retriever(path=str(tmp_path / "new")).storage, EdgeStorage)


def test_existing_edge_collection_with_other_vectors(
    make_retriever: MakeRetriever, tmp_path: Path
) -> None:
    storage = EdgeStorage(tmp_path)
    storage.create_collection(CollectionSpec("other", "dense", 768, Distance.DOT, "sparse"))
    storage.close()
    retriever = make_retriever(collection_name="other", path=str(tmp_path))
    with pytest.raises(CollectionMismatchError, match=r"768 dimensions.*Dot distance"):
        retriever.add_texts(["text"], show_progress=False)


def test_a_folder_opened_twice_gives_a_clear_error(
    make_retriever: MakeRetriever, tmp_path: Path, documents: list
) -> None:
    first = make_retriever(collection_name="c", path=str(tmp_path))
    first.add_documents(documents[:3], show_progress=False)
    second = make_retriever(collection_name="c", path=str(tmp_path))
    with pytest.raises(StorageError, match="already open"):
        second.invoke("anything")
    first.close()
    assert len(second.invoke("anything", k=2)) == 2


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden"])
def test_unsafe_collection_names(make_retriever: MakeRetriever, name: str) -> None:
    with pytest.raises(InvalidParameterError, match="folder name"):
        make_retriever(collection_name=name).add_texts(["x"], show_progress=False)


def test_filter_translation_keeps_results(demo_retriever: HybridRetriever) -> None:
    in_range = models.Filter(
        must=[
            models.FieldCondition(key="metadata.topic", match=models.MatchAny(any=["sport"])),
        ],
        must_not=[
            models.FieldCondition(key="metadata.topic", match=models.MatchValue(value="health"))
        ],
    )
    docs = demo_retriever.invoke("oxygen and red blood cells", k=10, filter=in_range)
    assert docs and {d.metadata["topic"] for d in docs} == {"sport"}


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            models.FieldCondition(key="metadata.flag", match=models.MatchValue(value=True)),
            "cannot match the boolean",
        ),
        (
            models.FieldCondition(
                key="metadata.place",
                geo_radius=models.GeoRadius(center=models.GeoPoint(lon=0.0, lat=0.0), radius=10.0),
            ),
            "geo_radius",
        ),
    ],
)
def test_untranslatable_filters_are_refused(condition: object, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        to_edge_filter(models.Filter(must=[condition]))  # type: ignore[list-item]


def test_cluster_routing_is_refused_on_edge(make_retriever: MakeRetriever, documents: list) -> None:
    retriever = make_retriever(engine="edge")
    retriever.add_documents(documents[:3], show_progress=False)
    with pytest.raises(InvalidParameterError, match="single local shard"):
        retriever.invoke("anything", shard_key="tenant-a")
    with pytest.raises(InvalidParameterError, match="read_consistency must be"):
        retriever.invoke("anything", read_consistency="most")
