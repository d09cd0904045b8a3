"""``hybrid-retriever index-vectors``: JSON lines with precomputed vectors, as users run it
(a subprocess, the bundled models, Qdrant Edge on disk). A bad line goes to the rejects
file with its line number and reason and the run goes on; ``--strict`` writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_runner import ok, one_line_error, run
from langchain_core.documents import Document

from hybrid_retriever import HybridRetriever, SentenceTransformerEncoder, SpladeEncoder

MODELS = ["--dense-model", "all-MiniLM-L6-v2", "--sparse-model", "splade-tiny"]


@pytest.fixture(scope="module")
def good_lines(
    documents: list[Document],
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
) -> list[dict[str, Any]]:
    chosen = documents[:6]
    texts = [d.page_content for d in chosen]
    dense = dense_encoder.encode_documents(texts)
    sparse = sparse_encoder.encode_documents(texts)
    return [
        {
            "id": d.id,
            "text": d.page_content,
            "metadata": d.metadata,
            "dense": v,
            "sparse": {"indices": s.indices, "values": s.values},
        }
        for d, v, s in zip(chosen, dense, sparse, strict=True)
    ]


def bad_lines(good: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """One bad line of each kind (as written to the file) and what its reason says."""

    def changed(**changes: Any) -> str:
        return json.dumps({**good, "id": f"bad-{len(changes)}-{sorted(changes)[0]}", **changes})

    return {
        "dimension": (changed(dense=good["dense"][:100]), "has 100 values, but the collection"),
        "nan": (
            changed(dense="NAN").replace('"NAN"', "[NaN]"),
            "NaN is not JSON",
        ),
        "zeros": (changed(dense=[0.0] * 384), "all zeros"),
        "vocabulary": (
            changed(sparse={"indices": [3, 40000], "values": [1.0, 1.0]}),
            "index 40000, outside the sparse model's vocabulary of 30522 terms",
        ),
        "strings": (changed(dense=["0.1"] * 384), "not a list of numbers"),
        "no-sparse": (
            json.dumps({k: v for k, v in good.items() if k != "sparse"} | {"id": "ns"}),
            "no 'sparse' vector",
        ),
        "clash": (changed(id=good["id"], text="another text"), "already the id of a different"),
    }


def test_index_vectors_writes_good_lines_and_rejects_bad_ones(
    tmp_path: Path,
    good_lines: list[dict[str, Any]],
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
) -> None:
    bad = bad_lines(good_lines[0])
    lines = [json.dumps(g) for g in good_lines[:3]]
    lines += [line for line, _ in bad.values()]
    lines += [json.dumps(g) for g in good_lines[3:]]
    source = tmp_path / "vectors.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = tmp_path / "qdrant"

    ran = ok(run("index-vectors", source, *MODELS, "--path", data, "--no-progress", cwd=tmp_path))
    assert "Wrote 6 documents" in ran.stdout
    assert f"Rejected {len(bad)} lines" in ran.stdout
    rejects = [
        json.loads(line)
        for line in (tmp_path / "rejects-vectors.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [r["line_number"] for r in rejects] == list(range(4, 4 + len(bad)))
    for reject, (kind, (line, reason)) in zip(rejects, bad.items(), strict=True):
        assert reason in reject["reason"], kind
        assert reject["line"] == line
        assert reject["where"] == f"{source}:{reject['line_number']}"

    retriever = HybridRetriever(
        collection_name="vectors",
        path=str(data),
        dense_encoder=dense_encoder,
        sparse_encoder=sparse_encoder,
    )
    try:
        assert retriever.count() == 6
        hits = retriever.invoke(good_lines[4]["text"], k=1)
        assert hits[0].id == good_lines[4]["id"]
        assert hits[0].page_content == good_lines[4]["text"]
    finally:
        retriever.close()

    # Again: the same points are rewritten, none added.
    ok(run("index-vectors", source, *MODELS, "--path", data, "--no-progress", cwd=tmp_path))
    retriever = HybridRetriever(
        collection_name="vectors",
        path=str(data),
        dense_encoder=dense_encoder,
        sparse_encoder=sparse_encoder,
    )
    try:
        assert retriever.count() == 6
    finally:
        retriever.close()


def test_strict_writes_nothing_and_models_are_required(
    tmp_path: Path, good_lines: list[dict[str, Any]]
) -> None:
    bad_line, reason = bad_lines(good_lines[0])["vocabulary"]
    source = tmp_path / "vectors.jsonl"
    source.write_text(
        "\n".join([json.dumps(good_lines[0]), bad_line, json.dumps(good_lines[1])]) + "\n",
        encoding="utf-8",
    )
    data = tmp_path / "qdrant"
    error = one_line_error(
        run("index-vectors", source, *MODELS, "--path", data, "--strict", cwd=tmp_path)
    )
    assert f"{source}:2" in error and reason in error
    assert not (data / "vectors").exists()

    # Written with the default models, the collection refuses vectors declared as another
    # SPLADE model's, before that model is even loaded (it is not installed here).
    source.write_text(json.dumps(good_lines[0]) + "\n", encoding="utf-8")
    ok(run("index-vectors", source, *MODELS, "--path", data, "--no-progress", cwd=tmp_path))
    other = ["--dense-model", "all-MiniLM-L6-v2", "--sparse-model", "naver/splade-v3"]
    error = one_line_error(run("index-vectors", source, *other, "--path", data, cwd=tmp_path))
    assert "holds vectors of 'splade-tiny', but these are declared as 'naver/splade-v3'" in error

    missing = run("index-vectors", source, "--path", data, cwd=tmp_path)
    assert missing.returncode == 2 and "--dense-model" in missing.stderr


def test_index_vectors_reads_parquet_rows(
    tmp_path: Path,
    good_lines: list[dict[str, Any]],
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
) -> None:
    pyarrow = pytest.importorskip("pyarrow")
    parquet = pytest.importorskip("pyarrow.parquet")
    rows = [{**g, "metadata": json.dumps(g["metadata"])} for g in good_lines]
    rows[2] = {**rows[2], "id": "far", "sparse": {"indices": [1, 99999], "values": [1.0, 2.0]}}
    source = tmp_path / "vectors.parquet"
    parquet.write_table(pyarrow.Table.from_pylist(rows), source)
    data = tmp_path / "qdrant"

    ran = ok(run("index-vectors", source, *MODELS, "--path", data, "--no-progress", cwd=tmp_path))
    assert "Wrote 5 documents" in ran.stdout and "Rejected 1 line" in ran.stdout
    (reject,) = [
        json.loads(line)
        for line in (tmp_path / "rejects-vectors.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert reject["where"] == f"{source}:3" and "index 99999" in reject["reason"]
    retriever = HybridRetriever(
        collection_name="vectors",
        path=str(data),
        dense_encoder=dense_encoder,
        sparse_encoder=sparse_encoder,
    )
    try:
        assert retriever.count() == 5
        (stored,) = retriever.get_by_ids([good_lines[0]["id"]])
        assert stored.metadata == good_lines[0]["metadata"]
    finally:
        retriever.close()
