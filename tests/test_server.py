"""A real Qdrant server or cluster: run with QDRANT_URL set (see docs/storage.md, "Server tests").

    docker run -d -p 6333:6333 -p 6334:6334 qdrant/qdrant
    QDRANT_URL=http://localhost:6333 bash scripts/test.sh tests/test_server.py

QDRANT_API_KEY is read when the server needs one. Without QDRANT_URL these tests
are skipped, except the ones that need no server at all.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from qdrant_client import QdrantClient, models

from hybrid_retriever import (
    ClusterOptions,
    HybridRetriever,
    InvalidParameterError,
    QdrantClientStorage,
    StorageError,
)

QDRANT_URL = os.environ.get("QDRANT_URL")
QDRANT_API_KEY = os.environ.get("QDRANT_API_KEY")
needs_server = pytest.mark.skipif(
    not QDRANT_URL,
    reason="no Qdrant server: set QDRANT_URL (e.g. docker run -p 6333:6333 qdrant/qdrant)",
)
MakeRetriever = Callable[..., HybridRetriever]


@pytest.fixture()
def collection_name() -> Iterator[str]:
    name = f"hybrid-retriever-test-{uuid.uuid4().hex[:8]}"
    yield name
    if QDRANT_URL:
        QdrantClient(url=QDRANT_URL, api_key=QDRANT_API_KEY).delete_collection(name)


def test_unreachable_server_fails_fast_and_clearly(make_retriever: MakeRetriever) -> None:
    retriever = make_retriever(url="http://127.0.0.1:9", api_key="not-a-real-key", timeout=5)
    start = time.monotonic()
    with pytest.raises(StorageError, match="Could not reach Qdrant") as error:
        retriever.invoke("anything")
    assert time.monotonic() - start < 30
    assert "not-a-real-key" not in str(error.value)


def test_cluster_options_are_refused_for_embedded_use() -> None:
    with pytest.raises(InvalidParameterError, match="Connect with url="):
        HybridRetriever(cluster=ClusterOptions(shard_number=2))


@needs_server
def test_index_and_search_on_a_server(
    make_retriever: MakeRetriever, documents: list, collection_name: str
) -> None:
    retriever = make_retriever(
        collection_name=collection_name, url=QDRANT_URL, api_key=QDRANT_API_KEY
    )
    retriever.add_documents(documents, show_progress=False)
    assert retriever.count() == len(documents)
    top = retriever.invoke("why does bread dough rise", k=3)[0]
    assert top.metadata["topic"] == "cooking"
    assert "api_key" not in repr(retriever.storage)


@needs_server
async def test_native_async_on_a_server(
    make_retriever: MakeRetriever, documents: list, collection_name: str
) -> None:
    retriever = make_retriever(
        collection_name=collection_name, url=QDRANT_URL, api_key=QDRANT_API_KEY
    )
    assert isinstance(retriever.storage, QdrantClientStorage)
    assert retriever.storage.async_client is not None
    await retriever.aadd_documents(documents, show_progress=False)
    docs = await retriever.ainvoke("neutron stars", k=2, read_consistency="majority")
    assert docs[0].metadata["topic"] == "astronomy"


@needs_server
def test_distributed_collection_options(
    make_retriever: MakeRetriever, documents: list, collection_name: str
) -> None:
    options = ClusterOptions(
        shard_number=2,
        replication_factor=1,
        write_consistency_factor=1,
        on_disk_vectors=True,
        on_disk_payload=True,
    )
    retriever = make_retriever(
        collection_name=collection_name, url=QDRANT_URL, api_key=QDRANT_API_KEY, cluster=options
    )
    retriever.add_documents(documents, show_progress=False)
    info = QdrantClient(url=QDRANT_URL, api_key=QDRANT_API_KEY).get_collection(collection_name)
    params = info.config.params
    assert params.shard_number == 2
    assert params.on_disk_payload is True
    assert isinstance(params.vectors, dict) and params.vectors["dense"].on_disk is True
    assert retriever.invoke("planets", k=1, read_consistency=1)


@needs_server
def test_custom_sharding_keeps_tenants_apart(
    make_retriever: MakeRetriever, collection_name: str
) -> None:
    options = ClusterOptions(shard_keys=("tenant-a", "tenant-b"))
    storage = QdrantClientStorage.connect(url=QDRANT_URL, api_key=QDRANT_API_KEY, cluster=options)
    tenant_a = make_retriever(
        collection_name=collection_name, storage=storage.for_shard_key("tenant-a")
    )
    tenant_b = make_retriever(
        collection_name=collection_name, storage=storage.for_shard_key("tenant-b")
    )
    tenant_a.add_texts(["bread rises with yeast"], show_progress=False)
    tenant_b.add_texts(["neutron stars are dense"], show_progress=False)
    assert [d.page_content for d in tenant_a.invoke("stars", k=5)] == ["bread rises with yeast"]
    assert [d.page_content for d in tenant_b.invoke("bread", k=5)] == ["neutron stars are dense"]
    both = tenant_a.invoke("stars", k=5, shard_key=["tenant-a", "tenant-b"])
    assert len(both) == 2
    client = QdrantClient(url=QDRANT_URL, api_key=QDRANT_API_KEY)
    assert client.get_collection(collection_name).config.params.sharding_method == (
        models.ShardingMethod.CUSTOM
    )


def test_credentials_never_leak(
    make_retriever: MakeRetriever,
    caplog: pytest.LogCaptureFixture,
    recwarn: pytest.WarningsRecorder,
) -> None:
    secrets = ("hunter2", "sekret-api-key")
    retriever = make_retriever(
        url="http://admin:hunter2@127.0.0.1:9/?api-key=sekret-api-key",
        api_key="sekret-api-key",
        timeout=5,
    )
    texts = [repr(retriever), str(retriever), repr(retriever.storage)]
    with caplog.at_level("DEBUG"), pytest.raises(StorageError) as error:
        retriever.invoke("anything")
    texts += [str(error.value), repr(error.value), caplog.text]
    texts += [str(w.message) for w in recwarn]
    cause = error.value.__cause__
    while cause is not None:
        texts.append(str(cause))
        cause = cause.__cause__
    for text in texts:
        for secret in secrets:
            assert secret not in text
