"""``eval`` and ``index`` on data as it ships, run as users run them (a subprocess, the
bundled models, Qdrant Edge in memory): they go to the end, lose nothing and say what
they met. The quirks themselves are in tests/data/quirks (see its README.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Ran, ok, one_line_error, run

from hybrid_retriever.evaluation import load_beir, score_queries
from hybrid_retriever.quirks import QuirkKind

QUIRKS = Path(__file__).parent / "data" / "quirks"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quirks")


@pytest.fixture(scope="module")
def ran(work: Path) -> Iterator[dict[str, Ran]]:
    notes = work / "notes.jsonl"
    notes.write_text(
        '{"id": "a", "text": "Yeast makes bread dough rise."}\n'
        '{"text": oops}\n'
        '{"id": "b", "text": "   "}\n'
        '{"id": "c", "text": "Planets orbit stars."}\n'
    )
    folder = work / "texts"
    folder.mkdir()
    (folder / "long.md").write_text(
        " ".join(f"Sentence {i} about baking bread." for i in range(300))
    )
    (folder / "short.txt").write_text("Planets orbit stars.")
    (folder / "blank.txt").write_text("  \n")
    commands = {
        "eval": (
            "eval",
            QUIRKS,
            "--memory",
            "--rankings",
            "--json",
            work / "quirks.json",
            "--latency-queries",
            "2",
            "--no-progress",
        ),
        "index": ("index", notes, "--collection", "notes", "--path", work / "q", "--no-progress"),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run, *args, cwd=work) for name, args in commands.items()}
        results = {name: future.result() for name, future in futures.items()}
    results["texts"] = run(
        "index", folder, "--collection", "texts", "--path", work / "q", "--no-progress", cwd=work
    )
    results["strict"] = run(
        "index", notes, "--collection", "strict", "--path", work / "q", "--strict", cwd=work
    )
    results["again"] = run(
        "index", notes, "--collection", "notes", "--path", work / "q", "--no-progress", cwd=work
    )
    yield results


@pytest.fixture(scope="module")
def report(ran: dict[str, Ran], work: Path) -> dict[str, Any]:
    ok(ran["eval"])
    loaded: dict[str, Any] = json.loads((work / "quirks.json").read_text())
    return loaded


def test_eval_goes_to_the_end_and_states_every_quirk(
    ran: dict[str, Ran], report: dict[str, Any]
) -> None:
    out = ran["eval"].stdout
    expected = {q.kind.value: q.message for q in load_beir(QUIRKS).quirks}
    assert (
        {q["kind"] for q in report["quirks"]}
        == set(expected)
        == {k.value for k in QuirkKind} - {QuirkKind.NO_TITLES.value}
    )
    for quirk in report["quirks"]:
        assert quirk["message"] == expected[quirk["kind"]]
        assert f"Data: {quirk['message']}" in out
    assert report["num_docs"] == 6
    assert report["points"] == 6  # empty and unreadable records are not indexed, "tides" once


def test_eval_scores_every_judged_query_with_the_judgements_as_shipped(
    report: dict[str, Any],
) -> None:
    dataset = load_beir(QUIRKS)
    for name, ranking in report["rankings"].items():
        assert set(report["per_query"][name]) == {"q1", "q2", "q3", "q4", "q5"}
        assert ranking["q4"] == []  # the empty query retrieves nothing and scores 0
        assert report["per_query"][name]["q4"] == {m: 0.0 for m in report["metrics"]}
        scored = {q: {d: -float(r) for r, d in enumerate(ids, 1)} for q, ids in ranking.items()}
        expected = score_queries(dataset.qrels, scored, report["metrics"])
        for query_id, scores in expected.items():
            assert report["per_query"][name][query_id] == pytest.approx(scores)
        # ghost-doc is judged for q1 and can never be found: nDCG@10 of q1 stays below 1.
        assert report["per_query"][name]["q1"]["ndcg@10"] < 1.0
    assert report["latency_queries"] == 2
    for values in report["runs"].values():
        assert values["query_ms_p50"] > 0


def test_index_sets_bad_records_aside_and_indexes_the_rest(ran: dict[str, Ran], work: Path) -> None:
    out = ok(ran["index"]).stdout
    assert "2 records of" in out and "cannot be indexed" in out
    assert "Indexed 2 documents as 2 passages" in out
    assert "Rejected 2 records, not indexed: see rejects-notes.jsonl" in out
    rejects = [json.loads(line) for line in (work / "rejects-notes.jsonl").read_text().splitlines()]
    notes = work / "notes.jsonl"
    assert [(r["where"], r["empty"]) for r in rejects] == [
        (f"{notes}:2", False),
        (f"{notes}:3", True),
    ]
    assert rejects[0]["line"] == '{"text": oops}'
    assert "not valid JSON" in rejects[0]["reason"]
    assert rejects[1]["id"] == "b"


def test_index_again_writes_nothing_twice(ran: dict[str, Ran]) -> None:
    out = ok(ran["again"]).stdout
    assert "0 written, 2 already stored unchanged; 2 points in the collection" in out
    assert "Rejected 2 records" in out


def test_strict_index_refuses_the_source_before_writing(ran: dict[str, Ran], work: Path) -> None:
    line = one_line_error(ran["strict"])
    assert "notes.jsonl:2: not valid JSON" in line
    assert not (work / "rejects-strict.jsonl").exists()


def test_index_splits_long_text_files_and_accounts_for_empty_ones(
    ran: dict[str, Ran], work: Path
) -> None:
    out = ok(ran["texts"]).stdout
    # blank.txt is rejected, not counted among the documents (it was before)
    passages = int(out.split("2 documents as ")[1].split()[0])
    assert passages > 2  # long.md became several chunks, short.txt stayed whole
    assert "Rejected 1 record" in out
    (blank,) = [json.loads(x) for x in (work / "rejects-texts.jsonl").read_text().splitlines()]
    assert blank["id"] == "blank.txt" and blank["empty"]
