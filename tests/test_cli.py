"""The ``hybrid-retriever`` command, run as users run it: in a subprocess, on a small BEIR
dataset written here, with the real bundled models and real Qdrant Edge.

Starting Python with torch costs seconds, so the commands that load models run once,
in one flow on one data folder (index, then eval on the same collection, which also
checks that re-indexing is a no-op, then search twice), while the demo and the
bad-input commands (which fail before loading any model) run alongside it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from cli_runner import ENV, Ran, finish, ok, one_line_error, run, start
from qdrant_client.http import models

from hybrid_retriever.cli import build_parser, describe, main
from hybrid_retriever.cli.evaluate import collection_name, select_runs
from hybrid_retriever.cli.filters import parse_filters
from hybrid_retriever.demo import demo_documents
from hybrid_retriever.errors import InvalidDocumentError, InvalidParameterError

CORPUS = [
    ("d1", "Bread", "Yeast ferments sugars in bread dough and releases carbon dioxide."),
    ("d2", "Sourdough", "A sourdough starter is wild yeast and lactic acid bacteria."),
    ("d3", "Pasta", "Fresh pasta is made from flour and eggs, kneaded and rolled thin."),
    ("d4", "Caramel", "Sugar browns when it is heated above 160 degrees."),
    ("d5", "Transits", "Astronomers find planets around other stars by the dip in starlight."),
    ("d6", "Radial velocity", "A planet makes its host star wobble, which reveals it."),
    ("d7", "Black holes", "Nothing escapes the gravity of a black hole."),
    ("d8", "Comets", "Comets are icy bodies that release gas near the Sun."),
    ("d9", "Insulin", "Type 2 diabetes develops when cells become resistant to insulin."),
    ("d10", "Exercise", "Aerobic exercise improves insulin sensitivity."),
    ("d11", "Sleep", "Adults need seven to nine hours of sleep."),
    # Shares its id with query q3, as in ArguAna: --ignore-identical-ids must drop it.
    ("q3", "", "What causes type 2 diabetes?"),
]
QUERIES = {
    "q1": "why does bread dough rise",
    "q2": "how are planets around other stars detected",
    "q3": "What causes type 2 diabetes?",
}
QRELS = [
    ("q1", "d1", 2),
    ("q1", "d2", 1),
    ("q2", "d5", 1),
    ("q2", "d6", 1),
    ("q3", "d9", 1),
    ("q3", "d10", 1),
]


def write_beir(folder: Path, qrels: Sequence[tuple[str, str, int]] = QRELS) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in CORPUS)
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    )
    rows = "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_beir(tmp_path_factory.mktemp("cli") / "toy")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flow")


@pytest.fixture(scope="module")
def flow(work: Path, data: Path) -> Iterator[dict[str, Ran]]:
    """Every command of this module, run once; the tests below read the results.

    Two chains run side by side, one per core: index -> eval -> search --json (all
    branches, then two) on the toy dataset, and demo -> search (table) on the collection
    the demo wrote, then index --no-bm25 -> search on a two-branch collection; the
    bad-input commands, which stop before loading models, start right away.
    """
    qdrant, demo_path, plain_path = work / "qdrant", work / "demo", work / "plain"
    bad_jsonl = work / "bad.jsonl"
    bad_jsonl.write_text('{"text": "fine", "id": 1}\n{"text": oops}\n')
    empty = work / "empty"
    empty.mkdir()
    quick = {
        "missing": start("index", work / "missing", "--collection", "x", "--memory", cwd=work),
        "missing-debug": start("--debug", "index", work / "missing", "--collection", "x", cwd=work),
        "malformed": start(
            "index", bad_jsonl, "--collection", "x", "--memory", "--strict", cwd=work
        ),
        "no-collection": start(
            "search", "bread", "--collection", "nope", "--path", empty, cwd=work
        ),
        "no-eval-data": start("eval", work / "no-such-dataset", cwd=work),
    }
    location = ("--collection", "toy", "--path", qdrant)

    def toy_chain() -> dict[str, Ran]:
        return {
            "index": run("index", data, *location, cwd=work),
            "eval": run(
                "eval",
                data,
                *location,
                "--ignore-identical-ids",
                "--rankings",
                "--json",
                work / "out" / "toy.json",
                "--plot",
                work / "out" / "toy.png",
                "--no-progress",
                cwd=work,
            ),
            "search-json": run(
                "search",
                QUERIES["q1"],
                *location,
                "--k",
                "4",
                "--filter",
                "title!=Bread",
                "--fusion",
                "rrf",
                "--json",
                cwd=work,
            ),
            "search-branches": run(
                "search", QUERIES["q1"], *location, "--branches", "dense,bm25", "--json", cwd=work
            ),
        }

    def demo_chain() -> dict[str, Ran]:
        return {
            "demo": run("demo", "what makes bread rise", "--k", "2", "--path", demo_path, cwd=work),
            "search": run(
                "search",
                "why does bread dough rise",
                "--collection",
                "demo",
                "--path",
                demo_path,
                "--filter",
                "topic=cooking",
                "--k",
                "3",
                cwd=work,
            ),
            "index-plain": run(
                "index", data, "--collection", "plain", "--path", plain_path, "--no-bm25", cwd=work
            ),
            "search-plain": run(
                "search",
                QUERIES["q1"],
                "--collection",
                "plain",
                "--path",
                plain_path,
                "--json",
                cwd=work,
            ),
            "search-plain-bm25": run(
                "search",
                "bread",
                "--collection",
                "plain",
                "--path",
                plain_path,
                "--branches",
                "sparse,bm25",
                cwd=work,
            ),
        }

    with ThreadPoolExecutor(max_workers=2) as pool:
        chains = [pool.submit(toy_chain), pool.submit(demo_chain)]
        results = {name: ran for chain in chains for name, ran in chain.result().items()}
    results.update({name: finish(started) for name, started in quick.items()})
    yield results


@pytest.fixture(scope="module")
def report(flow: dict[str, Ran], work: Path) -> dict[str, Any]:
    """The eval command's JSON report."""
    ok(flow["eval"])
    loaded: dict[str, Any] = json.loads((work / "out" / "toy.json").read_text())
    return loaded


# -- the main flow -------------------------------------------------------------------------------


def test_index_writes_every_document(flow: dict[str, Ran]) -> None:
    out = ok(flow["index"]).stdout
    assert "Indexed 12 documents" in out
    assert "Branches: dense, sparse, bm25." in out  # BM25 by default
    assert "12 written, 0 already stored unchanged; 12 points in the collection" in out
    assert "docs/s" in out


def test_eval_report_has_the_documented_structure(report: dict[str, Any]) -> None:
    assert report["dataset"] == "toy"
    assert report["num_docs"] == 12
    assert report["num_queries"] == 3
    assert report["metrics"] == ["ndcg@10", "recall@100", "mrr@10"]
    assert report["depth"] == 100
    # The default fusion is named "convex" here as in Python; "convex-0.5": equal weights.
    # The runs are those of the branches the collection has (bm25 with a BM25 branch).
    branches = report["branches"]
    assert branches in (["dense", "sparse"], ["dense", "sparse", "bm25"])
    runs = ["dense", "sparse", *branches[2:], "convex", "rrf", "dbsf", "convex-0.5", "adaptive"]
    assert list(report["runs"]) == runs
    for values in report["runs"].values():
        for metric in ("ndcg@10", "recall@100", "mrr@10"):
            assert isinstance(values[metric], float)
            assert 0.0 <= values[metric] <= 1.0
        assert values["query_ms_p50"] > 0
        assert values["query_ms_p95"] >= values["query_ms_p50"]
    assert isinstance(report["index_seconds"], float)
    assert report["query_ms_p50"] == report["runs"]["convex"]["query_ms_p50"]
    assert report["runs"]["convex"]["options"] == {}  # what a retriever does by default
    assert report["runs"]["convex-0.5"]["options"] == {
        "branches": branches,
        "fusion": "convex",
        "weights": dict.fromkeys(branches, 0.5),
    }
    # The runtime changes speed and vectors: the report names it per encoder.
    assert report["encoders"] == {
        "dense": {"model": "all-MiniLM-L6-v2", "backend": "onnx-int8", "precision": "auto"},
        "sparse": {"model": "splade-tiny", "backend": "onnx-int8", "precision": "auto"},
    }
    assert report["machine"]["default_backend"] == "onnx-int8"
    assert report["runs"]["dense"]["options"] == {"branches": ["dense"]}
    assert report["runs"]["sparse"]["options"] == {"branches": ["sparse"]}


def test_eval_reuses_what_index_wrote(report: dict[str, Any]) -> None:
    # Same collection, same documents: nothing is encoded again, nothing is duplicated.
    assert report["docs_written"] == 0
    assert report["docs_unchanged"] == 12
    assert report["points"] == 12


def test_eval_table_is_printed(flow: dict[str, Ran], report: dict[str, Any]) -> None:
    out = ok(flow["eval"]).stdout
    assert "toy (test): 12 documents, 3 queries" in out
    assert "encoders: dense all-MiniLM-L6-v2 (onnx-int8), sparse splade-tiny (onnx-int8)" in out
    # Quiet: no third-party warning (ranx's numba notes, ONNX Runtime's quantizer).
    assert "Warning" not in flow["eval"].stderr, flow["eval"].stderr
    header = next(line for line in out.splitlines() if line.startswith("run"))
    assert header.split() == ["run", "nDCG@10", "Recall@100", "MRR@10", "p50", "ms", "p95", "ms"]
    for name, values in report["runs"].items():
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert row.split()[1] == f"{values['ndcg@10']:.4f}"


def test_ignore_identical_ids_drops_only_the_query_itself(report: dict[str, Any]) -> None:
    rankings = report["rankings"]
    for ranking in rankings.values():
        assert "q3" not in ranking["q3"]
    # The dense branch returns every document (12 < 100): all but q3 itself for q3,
    # and q3 is still a candidate for the other queries.
    assert len(rankings["dense"]["q3"]) == 11
    assert "q3" in rankings["dense"]["q1"]
    assert len(rankings["dense"]["q1"]) == 12


def reference_metrics(ranked: list[str], judged: Mapping[str, int]) -> dict[str, float]:
    """nDCG@10 (linear gain), Recall@100 and MRR@10 written out, independent of ranx."""
    dcg = sum(judged.get(d, 0) / math.log2(rank + 1) for rank, d in enumerate(ranked[:10], 1))
    ideal = sorted(judged.values(), reverse=True)[:10]
    idcg = sum(grade / math.log2(rank + 1) for rank, grade in enumerate(ideal, 1))
    relevant = {d for d, grade in judged.items() if grade > 0}
    first = next((r for r, d in enumerate(ranked[:10], 1) if d in relevant), None)
    return {
        "ndcg@10": dcg / idcg if idcg else 0.0,
        "recall@100": len(relevant.intersection(ranked[:100])) / len(relevant),
        "mrr@10": 1 / first if first else 0.0,
    }


def test_eval_metrics_agree_with_a_recomputation_from_the_rankings(
    report: dict[str, Any],
) -> None:
    qrels: dict[str, dict[str, int]] = {}
    for q, d, grade in QRELS:
        qrels.setdefault(q, {})[d] = grade

    for name, ranking in report["rankings"].items():
        expected = {q: reference_metrics(ranking[q], qrels[q]) for q in QUERIES}
        for q in QUERIES:
            assert report["per_query"][name][q] == pytest.approx(expected[q], abs=1e-9)
        for metric in ("ndcg@10", "recall@100", "mrr@10"):
            mean = sum(expected[q][metric] for q in QUERIES) / len(QUERIES)
            assert report["runs"][name][metric] == pytest.approx(mean, abs=1e-9)


def test_eval_plot_is_a_png(report: dict[str, Any], work: Path) -> None:
    png = work / "out" / "toy.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_search_prints_a_table_with_every_branch(flow: dict[str, Ran]) -> None:
    lines = ok(flow["search"]).stdout.splitlines()
    assert lines[0].split() == ["#", "fused", "dense", "sparse", "bm25", "id", "text"]
    assert len(lines) == 4  # header + k=3 rows
    first = lines[1].split()
    assert first[0] == "1"
    # Every branch found it: rank and score each.
    assert first[2].startswith("#") and first[4].startswith("#") and first[6].startswith("#")
    # The demo's documents carry no source id in their metadata: their own id is shown.
    assert first[8] in {d.id for d in demo_documents()}
    assert "Bread dough rises because yeast" in lines[1]


def test_search_json_explains_each_rank_and_applies_the_filter(flow: dict[str, Ran]) -> None:
    found = json.loads(ok(flow["search-json"]).stdout)
    results = found["results"]

    assert found["filter"] == ["title!=Bread"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4]
    assert "d1" not in {r["id"] for r in results}  # its title is Bread
    assert all(r["metadata"]["title"] != "Bread" for r in results)
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    for r in results:
        # The fused score is RRF over the branch ranks it reports (k=60, weights 1).
        branches = ("dense", "sparse", "bm25")
        expected = sum(1 / (60 + r[b]["rank"]) for b in branches if r[b]["rank"])
        assert r["score"] == pytest.approx(expected)
        assert set(r) == {
            "rank",
            "score",
            "relevance",
            *branches,
            "id",
            "point_id",
            "text",
            "metadata",
        }
        assert 0.0 <= r["relevance"] <= 1.0
        assert not any(key.startswith("_") for key in r["metadata"])  # result keys apart
        assert r["metadata"]["doc_id"] == r["id"]
    # All three searched; only d1 (filtered out) has the query's words, so BM25 ranks none.
    assert found["branches"] == ["dense", "sparse", "bm25"]
    assert all(r["bm25"] == {"rank": None, "score": None} for r in results)


def test_search_branches_chooses_what_is_fused(flow: dict[str, Ran]) -> None:
    found = json.loads(ok(flow["search-branches"]).stdout)
    assert found["branches"] == ["dense", "bm25"]
    assert found["results"][0]["id"] == "d1"
    assert found["results"][0]["bm25"]["rank"] == 1
    for r in found["results"]:
        assert {"dense", "bm25"} <= set(r) and "sparse" not in r


def test_index_no_bm25_makes_a_two_branch_collection(flow: dict[str, Ran]) -> None:
    out = ok(flow["index-plain"]).stdout
    assert "Indexed 12 documents" in out
    assert "Branches: dense, sparse (no BM25" in out
    found = json.loads(ok(flow["search-plain"]).stdout)
    assert found["branches"] == ["dense", "sparse"]  # opened as it was written
    assert all("bm25" not in r for r in found["results"])
    line = one_line_error(flow["search-plain-bm25"])
    assert "--branches names bm25, but the collection has no BM25 branch" in line
    assert "new --collection" in line and "bm25_encoder" not in line  # the CLI's advice


def test_branches_option_is_checked_before_models_load(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "q", "--collection", "c", "--branches", "dense,x"])
    assert "not a comma-separated list of branches among dense, sparse, bm25" in (
        capsys.readouterr().err
    )


def test_demo_runs_the_main_job(flow: dict[str, Ran]) -> None:
    out = ok(flow["demo"]).stdout
    assert "Indexed" in out and "collection 'demo'" in out
    assert "Q: what makes bread rise" in out
    assert "fused" in out


# -- bad input: one line, no traceback -----------------------------------------------------------


def test_missing_source_is_one_line(flow: dict[str, Ran]) -> None:
    line = one_line_error(flow["missing"])
    assert "missing does not exist" in line


def test_debug_shows_the_traceback(flow: dict[str, Ran]) -> None:
    ran = flow["missing-debug"]
    assert ran.returncode != 0
    assert "Traceback (most recent call last)" in ran.stderr
    assert "SourceNotFoundError" in ran.stderr


def test_malformed_jsonl_names_file_and_line_when_strict(flow: dict[str, Ran]) -> None:
    line = one_line_error(flow["malformed"])
    assert "bad.jsonl:2: not valid JSON" in line


def test_unknown_collection_is_reported(flow: dict[str, Ran]) -> None:
    line = one_line_error(flow["no-collection"])
    assert "Collection 'nope' does not exist" in line
    # Where it looked, what is there, and the command (not the Python call) that fixes it.
    assert "It holds no collection." in line
    assert "hybrid-retriever index SOURCE --collection nope" in line
    assert "from_documents" not in line


def test_missing_eval_dataset_is_reported(flow: dict[str, Ran]) -> None:
    line = one_line_error(flow["no-eval-data"])
    assert "no-such-dataset does not exist" in line


# -- in-process: parsing, quick checks -----------------------------------------------------------


def test_help_and_version_load_no_model(tmp_path: Path) -> None:
    code = (
        "import contextlib, io, sys\n"
        "from hybrid_retriever.cli import main\n"
        "for argv in (['--help'], ['index', '--help'], ['search', '--help'], ['eval', '--help'],"
        " ['tune', '--help'], ['demo', '--help'], ['index-vectors', '--help'], ['--version']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        "heavy = ('torch', 'sentence_transformers', 'transformers', 'ranx', 'matplotlib')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=ENV,
        check=True,
        cwd=tmp_path,
    )
    assert out.stdout.strip() == "[]"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("hybrid-retriever ")


def test_console_script_is_declared() -> None:
    scripts = entry_points(group="console_scripts", name="hybrid-retriever")
    assert [s.value for s in scripts] == ["hybrid_retriever.cli:main"]


def test_debug_is_accepted_before_and_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["--debug", "demo"]).debug is True
    assert parser.parse_args(["demo", "--debug"]).debug is True
    assert parser.parse_args(["demo"]).debug is False


def test_location_options_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["search", "q", "--collection", "c", "--path", "x", "--memory"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_errors_in_process_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "q", "--collection", "c", "--filter", "oops", "--memory"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("hybrid-retriever: error: --filter 'oops' is not KEY=VALUE")


def test_describe_keeps_messages_on_one_line() -> None:
    assert describe(InvalidDocumentError("a\n  b")) == "a b"
    assert describe(KeyError("x")).startswith("KeyError: 'x' (run with --debug")


def condition(key: str, **kwargs: object) -> models.FieldCondition:
    return models.FieldCondition(key=key, **kwargs)  # type: ignore[arg-type]


def test_filters_are_anded_and_prefixed_with_metadata() -> None:
    parsed = parse_filters(
        [
            "topic=cooking",
            "metadata.year>=2020",
            "year<2030.5",
            "lang!=de",
            'tags=["a","b"]',
            "rank=3",
            'code="007"',
            "page_content=exact text",
            "url=http://x/?a=b",
        ]
    )
    assert parsed == models.Filter(
        must=[
            condition("metadata.topic", match=models.MatchValue(value="cooking")),
            condition("metadata.year", range=models.Range(gte=2020)),
            condition("metadata.year", range=models.Range(lt=2030.5)),
            condition("metadata.tags", match=models.MatchAny(any=["a", "b"])),
            condition("metadata.rank", match=models.MatchValue(value=3)),
            condition("metadata.code", match=models.MatchValue(value="007")),
            condition("page_content", match=models.MatchValue(value="exact text")),
            condition("metadata.url", match=models.MatchValue(value="http://x/?a=b")),
        ],
        must_not=[condition("metadata.lang", match=models.MatchValue(value="de"))],
    )
    assert parse_filters([]) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("topic", "is not KEY=VALUE"),
        ("topic=", "is not KEY=VALUE"),
        ("=x", "is not KEY=VALUE"),
        ("year>=soon", "is not a number"),
        ("year>nan", "not a finite number"),
        ("score=0.5", "use a range"),
        ('tags=["a", 1]', "must be text"),
        ("x={}", "must be text"),
    ],
)
def test_bad_filters_are_refused(expression: str, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        parse_filters([expression])


def test_runs_and_collection_names() -> None:
    assert [r.name for r in select_runs("convex, dense")] == ["convex", "dense"]
    with pytest.raises(
        InvalidParameterError, match="choose among dense, sparse, bm25, convex, rrf"
    ):
        select_runs("dense,rrf2")
    assert collection_name("BEIR scifact (v2)") == "BEIR-scifact-v2"
    assert collection_name("...") == "dataset"
