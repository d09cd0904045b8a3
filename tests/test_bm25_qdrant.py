"""BM25 vectors scored by the real engines with the ``IDF`` modifier give BM25 itself.

The encoder writes the document side (saturated, length-normalised tf) and the query side
(1 per term); Qdrant multiplies each query term by ``ln(1 + (N - n + 0.5) / (n + 0.5))``.
Checked on qdrant-client's embedded mode and on Qdrant Edge, against scores computed by
hand. The engines compute in float32, hence the relative tolerance.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hybrid_retriever.encoders.bm25 import Bm25Encoder

DOCS = [
    "the cat sat on the mat",  # cat sat mat: 3 terms
    "dogs and cats are running",  # dog cat run: 3 terms
    "a running dog chases the cat cat",  # run dog chase cat cat: 5 terms
]
QUERY = "cat running"  # cat run
# k1 1.2, b 0.75, avg_len 3: documents 0 and 1 have length factor 1, so every tf-1 term
# weighs 2.2 / 2.2 = 1; document 2 has 0.25 + 0.75 * 5/3 = 1.5: cat (tf 2) weighs
# 2 * 2.2 / (2 + 1.8) = 22/19 and run (tf 1) 2.2 / (1 + 1.8) = 11/14.
# IDF over N = 3: cat (in 3) ln(1 + 0.5/3.5) = ln(8/7); run (in 2) ln(1 + 1.5/2.5) = ln(1.6).
EXPECTED = {
    1: math.log(8 / 7) + math.log(1.6),
    2: math.log(8 / 7) * 22 / 19 + math.log(1.6) * 11 / 14,
    0: math.log(8 / 7),
}


def encoder() -> Bm25Encoder:
    return Bm25Encoder(k1=1.2, b=0.75, avg_len=3)


def test_qdrant_client_idf_modifier_gives_bm25() -> None:
    from qdrant_client import QdrantClient, models

    bm25 = encoder()
    client = QdrantClient(":memory:")
    client.create_collection(
        "bm25",
        vectors_config={},
        sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    client.upsert(
        "bm25",
        points=[
            models.PointStruct(
                id=i, vector={"bm25": models.SparseVector(indices=v.indices, values=v.values)}
            )
            for i, v in enumerate(bm25.encode_documents(DOCS))
        ],
    )
    query = bm25.encode_query(QUERY)
    points = client.query_points(
        "bm25",
        query=models.SparseVector(indices=query.indices, values=query.values),
        using="bm25",
    ).points
    assert [p.id for p in points] == list(EXPECTED)
    assert {p.id: p.score for p in points} == pytest.approx(EXPECTED, rel=1e-6)


def test_qdrant_edge_idf_modifier_gives_bm25(tmp_path: Path) -> None:
    edge = pytest.importorskip("qdrant_edge")

    bm25 = encoder()
    config = edge.EdgeConfig(
        vectors={},
        sparse_vectors={"bm25": edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
    )
    shard = edge.EdgeShard.create(str(tmp_path / "shard"), config)
    shard.update(
        edge.UpdateOperation.upsert_points(
            [
                edge.Point(
                    id=i,
                    vector={"bm25": edge.SparseVector(indices=v.indices, values=v.values)},
                    payload={},
                )
                for i, v in enumerate(bm25.encode_documents(DOCS))
            ]
        )
    )
    query = bm25.encode_query(QUERY)
    request = edge.QueryRequest(
        limit=10,
        query=edge.Query.Nearest(
            edge.SparseVector(indices=query.indices, values=query.values), using="bm25"
        ),
        with_payload=False,
    )
    (points,) = shard.query_batch(edge.QueryBatchRequest([request]))
    assert [p.id for p in points] == list(EXPECTED)
    assert {p.id: p.score for p in points} == pytest.approx(EXPECTED, rel=1e-6)
