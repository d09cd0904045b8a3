"""``hybrid-retriever index`` reads JSON lines one line at a time: a bad line goes to the
rejects file with its true line number and the reason, and the run goes on; the pre-scan
makes the write path's checks, so nothing stops a run half way; ``--strict`` writes
nothing when a line is bad. Folder sources carry ``source`` and ``folder`` in metadata.

The reading itself is checked without models (``Source.checked``); the command as users
run it (a subprocess, the bundled models, Qdrant Edge on disk) once per behaviour."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Ran, ok, one_line_error, run

from hybrid_retriever.errors import DuplicateIdError, InvalidDocumentError
from hybrid_retriever.sources import DOC_ID_KEY, FOLDER_KEY, SOURCE_KEY, Rejected, open_source

# One bad line of each kind, and what its reason says.
BAD_LINES: dict[str, tuple[bytes, str]] = {
    "bytes": (b'{"id": "b", "text": "caf\xe9 au lait"}', "not UTF-8 text (byte 0xe9"),
    "json": (b'{"id": "j", "text": oops}', "not valid JSON"),
    "surrogate": (b'{"id": "s", "text": "a \\ud800 b"}', "'text' holds a lone surrogate"),
    "surrogate-in-metadata": (
        b'{"id": "sm", "text": "ok", "metadata": {"who": "\\udc00"}}',
        "holds a lone surrogate",
    ),
    "nan": (b'{"id": "n", "text": "ok", "metadata": {"score": NaN}}', "NaN is not JSON"),
    "infinity": (b'{"id": "i", "text": "ok", "weight": -Infinity}', "-Infinity is not JSON"),
    "overflow": (b'{"id": "o", "text": "ok", "weight": 1e999}', "too large for a 64-bit float"),
    "repeated-key": (b'{"id": "r", "text": "a", "text": "b"}', "'text' appears twice"),
    "id-clash": (b'{"id": "7", "text": "seven as a string"}', "already the id of a different"),
    "empty-text": (b'{"id": "e", "text": "   "}', "non-empty 'text'"),
    "text-type": (b'{"id": "t", "text": 42}', "non-empty 'text' string"),
    "id-type": (b'{"id": 1.5, "text": "ok"}', "an id must be"),
    "metadata-type": (b'{"id": "m", "text": "ok", "metadata": [1]}', "'metadata' is a list"),
    "not-an-object": (b'["a", "list"]', "expected a JSON object, got array"),
    "reserved-key": (b'{"id": "k", "text": "ok", "_score": 1}', "reserved metadata keys"),
    "deep": (b'{"id": "d", "text": "ok", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "deep"),
}

GOOD = [
    {"id": "g1", "text": "Yeast makes bread dough rise in a warm kitchen."},
    {"id": 7, "text": "Planets orbit stars along elliptical paths."},
    {"id": "g3", "text": "Sleep helps memory consolidate overnight."},
    {"text": "A record without an id about tides and the moon."},
]


def write_lines(path: Path, lines: list[bytes], *, ending: bytes = b"\r\n") -> Path:
    """``lines`` as a file, CRLF line endings by default (gzipped for ``.gz``)."""
    data = b"".join(line + ending for line in lines)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def good_lines() -> list[bytes]:
    return [json.dumps(record).encode() for record in GOOD]


# -- the reading, without models -----------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_a_bad_line_is_rejected_alone_with_its_line_number(
    tmp_path: Path, kind: str, suffix: str
) -> None:
    line, reason = BAD_LINES[kind]
    # good, good, good, BAD (line 4), good; blank line 2 counts as a line of the file
    lines = [*good_lines()[:1], b"", *good_lines()[1:3], line, good_lines()[3]]
    path = write_lines(tmp_path / f"notes{suffix}", lines)

    entries = list(open_source(path).checked())

    (rejected,) = [e for e in entries if isinstance(e, Rejected)]
    assert rejected.line_number == 5
    assert rejected.where == f"{path}:5"
    assert reason in rejected.reason and rejected.reason.startswith(f"{path}:5: ")
    assert [d.page_content for d in entries if not isinstance(d, Rejected)] == [
        r["text"] for r in GOOD
    ]
    assert open_source(path).survey() == (4, 1)
    with pytest.raises(InvalidDocumentError, match=r"notes\.jsonl(\.gz)?:5: "):
        open_source(path).scan()
    json.dumps(rejected.to_json(), ensure_ascii=False).encode("utf-8")  # writable as is


def test_one_bad_byte_on_line_150_rejects_line_150_only(tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"d{i}", "text": f"note {i}"}).encode() for i in range(1, 201)]
    lines[149] = b'{"id": "d150", "text": "caf\xe9"}'
    path = write_lines(tmp_path / "big.jsonl", lines, ending=b"\n")

    entries = list(open_source(path).checked())

    (rejected,) = [e for e in entries if isinstance(e, Rejected)]
    assert rejected.line_number == 150
    assert rejected.to_json()["line"] == '{"id": "d150", "text": "caf\\xe9"}'
    assert len(entries) == 200


def test_an_id_clash_names_both_lines_and_keeps_the_first(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "ids.jsonl",
        [
            b'{"id": 7, "text": "seven as a number"}',
            b'{"id": "7", "text": "seven as a number"}',  # the same record again: no clash
            b'{"id": "7", "text": "seven as a string"}',
        ],
    )
    entries = list(open_source(path).checked())
    assert [type(e).__name__ for e in entries] == ["Document", "Document", "Rejected"]
    clash = entries[2]
    assert isinstance(clash, Rejected) and isinstance(clash.error, DuplicateIdError)
    assert f"({path}:1)" in clash.reason and clash.doc_id == "7"


def test_a_first_line_with_a_byte_order_mark_is_line_1(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"text": "one"}\r\n{"text": oops}\r\n')
    (document, rejected) = list(open_source(path).checked())
    assert not isinstance(document, Rejected) and document.page_content == "one"
    assert isinstance(rejected, Rejected) and rejected.line_number == 2


def test_a_beir_corpus_is_read_as_beir_reads_it_and_checked_where_stored(tmp_path: Path) -> None:
    folder = tmp_path / "beir"
    folder.mkdir()
    write_lines(
        folder / "corpus.jsonl",
        [
            b'{"_id": "d1", "text": "Bread.", "metadata": {"score": NaN}}',  # not stored: kept
            b'{"_id": "d2", "text": "caf\\udc00"}',  # the text is stored: refused
            b'{"_id": "d3", "title": "T", "text": "Planets."}',
        ],
    )
    entries = list(open_source(folder).entries())
    assert [getattr(e, "id", None) for e in entries] == ["d1", None, "d3"]
    assert isinstance(entries[1], Rejected) and entries[1].line_number == 2
    assert "lone surrogate" in entries[1].reason and entries[1].reason.startswith(
        f"{folder / 'corpus.jsonl'}:2: the document"
    )


def test_a_broken_gzip_file_is_refused_whole_naming_the_last_line_read(tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"d{i}", "text": f"note {i} " * 20}).encode() for i in range(400)]
    whole = gzip.compress(b"\n".join(lines))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(
        InvalidDocumentError, match=r"cut\.jsonl\.gz: cannot be read after line \d+"
    ):
        open_source(path).survey()  # before anything is written


def test_a_folder_of_text_files_carries_source_and_folder(tmp_path: Path) -> None:
    root = tmp_path / "notes"
    (root / "guides" / "deep").mkdir(parents=True)
    (root / "top.md").write_text("Top-level notes.")
    (root / "guides" / "setup.md").write_text("Install it first.")
    (root / "guides" / "deep" / "more.txt").write_bytes(b"\xef\xbb\xbfMore.\r\n")

    documents = list(open_source(root))

    assert [(d.id, d.metadata) for d in documents] == [
        (name, {DOC_ID_KEY: name, SOURCE_KEY: name, FOLDER_KEY: folder})
        for name, folder in [
            ("top.md", ""),
            ("guides/setup.md", "guides"),
            ("guides/deep/more.txt", "guides/deep"),
        ]
    ]  # ids as before (the relative path), so a rerun rewrites the same points
    assert documents[2].page_content == "More."  # no byte-order mark in the text


# -- the command as users run it -----------------------------------------------------------------

LONG = " ".join(f"Sentence {i} about baking bread." for i in range(300))  # chunked: long#0...


@dataclass
class Corpus:
    path: Path
    expected: dict[int, str]
    """Line number -> what the reason of the line's reject says."""
    good_ids: set[str]


def mixed_corpus(path: Path) -> Corpus:
    """Good lines, one bad line of every kind after them, a record whose id is a chunk id
    of the long record (found only once chunked), CRLF endings."""
    lines = [*good_lines(), json.dumps({"id": "long", "text": LONG}).encode()]
    expected = {}
    for kind in sorted(BAD_LINES):
        line, reason = BAD_LINES[kind]
        lines.append(line)
        expected[len(lines)] = reason
    lines.append(json.dumps({"id": "long#1", "text": "A short note."}).encode())
    expected[len(lines)] = "'long#1' is already the id of a different record"
    lines.append(json.dumps({"id": "last", "text": "The last line is good."}).encode())
    write_lines(path, lines)
    return Corpus(path, expected, {"g1", "7", "g3", "last"})


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jsonl")


@pytest.fixture(scope="module")
def corpus(work: Path) -> Corpus:
    return mixed_corpus(work / "notes.jsonl")


@pytest.fixture(scope="module")
def ran(work: Path, corpus: Corpus) -> Iterator[dict[str, Ran]]:
    folder = work / "texts"
    (folder / "guides").mkdir(parents=True)
    (folder / "guides" / "setup.md").write_text("Install the package, then index your notes.")
    (folder / "guides" / "tuning.md").write_text("Install nothing more to tune the fusion.")
    (folder / "install.txt").write_text("Install notes kept at the top of the folder.")
    clash = write_lines(
        work / "clash.jsonl",
        [json.dumps({"id": "long", "text": LONG}).encode(), b'{"id": "long#1", "text": "x"}'],
    )
    index = ("index", "--path", work / "q", "--no-progress", "--collection")
    commands = {
        "index": (*index, "notes", corpus.path),
        "texts": (*index, "texts", folder),
        "strict-chunks": (*index, "clash", clash, "--strict"),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run, *args, cwd=work) for name, args in commands.items()}
        results = {name: future.result() for name, future in futures.items()}
    results["strict"] = run(
        "index",
        corpus.path,
        "--collection",
        "strict",
        "--path",
        work / "strict",
        "--strict",
        cwd=work,
    )
    search = ("search", "--path", work / "q", "--json", "--k", "50", "--collection")
    results["search"] = run(*search, "notes", "bread planets sleep tides", cwd=work)
    results["folder"] = run(*search, "texts", "install", "--filter", "folder=guides", cwd=work)
    results["missing"] = run(*search, "clash", "bread", cwd=work)
    yield results


def rejects(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_bad_line_goes_to_the_rejects_file_with_its_line_and_reason(
    ran: dict[str, Ran], work: Path, corpus: Corpus
) -> None:
    out = ok(ran["index"]).stdout
    found = {r["line_number"]: r for r in rejects(work / "rejects-notes.jsonl")}
    assert sorted(found) == sorted(corpus.expected)
    for number, reason in corpus.expected.items():
        assert found[number]["where"] == f"{corpus.path}:{number}"
        assert reason in found[number]["reason"], found[number]
    assert f"Rejected {len(corpus.expected)} records, not indexed" in out


def test_every_good_line_is_searchable(ran: dict[str, Ran], corpus: Corpus) -> None:
    results = json.loads(ok(ran["search"]).stdout)["results"]
    ids = {r["id"] for r in results}
    assert corpus.good_ids <= ids  # the record without an id is found by its text
    assert any("tides" in r["text"] for r in results)
    assert {r["metadata"].get("source_id") for r in results} >= {"long"}  # long's chunks
    # One hit per source (group_by, the default): one of long's chunks stands for it.
    assert len(ids & {"long#0", "long#1"}) == 1
    assert not any(r["text"] == "A short note." for r in results)


def test_strict_stops_at_the_first_bad_line_and_writes_nothing(
    ran: dict[str, Ran], work: Path, corpus: Corpus
) -> None:
    first = min(corpus.expected)
    line = one_line_error(ran["strict"])
    assert f"notes.jsonl:{first}: {BAD_LINES['bytes'][1]}" in line
    assert not (work / "strict").exists()  # refused before anything was opened
    assert not (work / "rejects-strict.jsonl").exists()


def test_strict_finds_a_chunk_id_clash_before_writing(ran: dict[str, Ran], work: Path) -> None:
    line = one_line_error(ran["strict-chunks"])
    assert "clash.jsonl:2: id 'long#1' is already the id of a different record" in line
    assert "does not exist" in one_line_error(ran["missing"])  # nothing was written


def test_folder_files_carry_source_and_folder_for_filters(ran: dict[str, Ran]) -> None:
    ok(ran["texts"])
    results = json.loads(ok(ran["folder"]).stdout)["results"]
    assert sorted((r["id"], r["metadata"]["source"], r["metadata"]["folder"]) for r in results) == [
        ("guides/setup.md", "guides/setup.md", "guides"),
        ("guides/tuning.md", "guides/tuning.md", "guides"),
    ]  # install.txt, at the top, is filtered out
