"""``--tenant`` on the command line: ``index`` writes into one tenant, ``search`` reads
only it, and re-indexing a tenant's source finds it stored unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from cli_runner import ok, run


def _source(path: Path, tenant: str) -> Path:
    records = [
        {"id": "r1", "text": f"{tenant} bakes bread with yeast."},
        {"id": "r2", "text": f"{tenant} watches neutron stars."},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_index_and_search_are_confined_to_the_tenant(tmp_path: Path) -> None:
    common = ["--collection", "shared", "--path", str(tmp_path / "data")]
    for tenant in ("acme", "globex"):
        source = _source(tmp_path / f"{tenant}.jsonl", tenant)
        ok(run("index", source, *common, "--tenant", tenant, "--no-progress", cwd=tmp_path))
    found = ok(
        run("search", "bread", *common, "--tenant", "acme", "--k", "10", "--json", cwd=tmp_path)
    )
    results = json.loads(found.stdout)["results"]
    assert sorted(r["id"] for r in results) == ["r1", "r2"]
    assert {r["metadata"]["tenant"] for r in results} == {"acme"}
    again = ok(
        run(
            "index",
            tmp_path / "acme.jsonl",
            *common,
            "--tenant",
            "acme",
            "--no-progress",
            cwd=tmp_path,
        )
    )
    assert "0 written, 2 already stored unchanged; 2 points" in again.stdout
