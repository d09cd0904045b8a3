"""Datasets as they ship: every quirk of tests/data/quirks is handled and reported.

The loader must neither stop nor drop judgements (scores would stop being comparable
with BEIR's); each quirk gets a line in the report. No model is loaded here; the
command-line runs on the same files are in tests/test_cli_quirks.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_retriever.errors import EmptyDocumentError, InvalidDocumentError
from hybrid_retriever.evaluation import BeirDataset, load_beir, read_qrels, score_queries
from hybrid_retriever.quirks import QuirkKind, file_traits
from hybrid_retriever.sources import Rejected, open_source

QUIRKS = Path(__file__).parent / "data" / "quirks"


@pytest.fixture(scope="module")
def dataset() -> BeirDataset:
    return load_beir(QUIRKS, "test")


def found(dataset: BeirDataset) -> dict[QuirkKind, tuple[int, tuple[str, ...], str]]:
    return {q.kind: (q.count, q.examples, q.message) for q in dataset.quirks}


@pytest.mark.parametrize(
    ("kind", "count", "examples", "says"),
    [
        (QuirkKind.EMPTY_DOCUMENTS, 2, ("empty-1", "empty-2"), "not indexed"),
        (QuirkKind.UNREADABLE_RECORDS, 1, (f"{QUIRKS / 'corpus.jsonl'}:8",), "not valid JSON"),
        (QuirkKind.REPEATED_DOCUMENT_IDS, 1, ("tides",), "the last record of each is indexed"),
        (QuirkKind.DUPLICATE_TEXTS, 1, ("planets-copy",), "all indexed"),
        (QuirkKind.TITLE_ONLY_DOCUMENTS, 1, ("sleep",), "indexed by title alone"),
        (QuirkKind.JUDGED_DOCUMENTS_NOT_IN_CORPUS, 1, ("ghost-doc",), "kept, as BEIR does"),
        (QuirkKind.JUDGED_QUERIES_NOT_IN_QUERIES, 1, ("q-ghost",), "not scored"),
        (QuirkKind.UNJUDGED_QUERIES, 1, ("q-unjudged",), "not run"),
        (QuirkKind.EMPTY_QUERIES, 1, ("q4",), "scored 0"),
        (QuirkKind.UPPERCASE_QUERIES, 1, ("q2",), "searched as written"),
        (QuirkKind.NON_POSITIVE_GRADES, 2, (), "not relevant"),
        (QuirkKind.REPEATED_JUDGEMENTS, 1, ("q3/tides",), "the last grade is kept"),
        (QuirkKind.CRLF, 2, ("corpus.jsonl", "qrels/test.tsv"), "read as plain lines"),
        (QuirkKind.BYTE_ORDER_MARK, 1, ("corpus.jsonl",), "ignored"),
        (QuirkKind.GZIPPED, 1, ("queries.jsonl.gz",), "read through gzip"),
    ],
)
def test_each_quirk_is_reported_with_its_count_and_what_was_done(
    dataset: BeirDataset, kind: QuirkKind, count: int, examples: tuple[str, ...], says: str
) -> None:
    reported = found(dataset)
    assert kind in reported, [q.message for q in dataset.quirks]
    assert reported[kind][:2] == (count, examples)
    assert says in reported[kind][2]


def test_a_clean_corpus_reports_no_quirk(tmp_path: Path) -> None:
    folder = tmp_path / "clean"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "a", "title": "A", "text": "alpha"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q", "text": "alpha"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\ta\t1\n")
    assert load_beir(folder).quirks == ()


def test_no_titles_at_all_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "untitled"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        '{"_id": "a", "text": "alpha"}\n{"_id": "b", "text": "b"}\n'
    )
    (folder / "queries.jsonl").write_text('{"_id": "q", "text": "alpha"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\ta\t1\n")
    assert found(load_beir(folder))[QuirkKind.NO_TITLES][0] == 2


def test_judgements_are_kept_as_in_the_file(dataset: BeirDataset) -> None:
    # Nothing dropped: unknown documents and queries, grades <= 0; a repeat keeps the last.
    assert dataset.qrels == {
        "q1": {"bread": 1, "ghost-doc": 1},
        "q2": {"planets": 1, "planets-copy": 1, "bread": 0},
        "q3": {"tides": 1, "coffee": -1},
        "q4": {"coffee": 1},
        "q5": {"sleep": 1, "empty-1": 1},
        "q-ghost": {"bread": 1},
    }
    assert dataset.queries == {
        "q1": "why does bread dough rise",
        "q2": "HOW DO PLANETS MOVE",
        "q3": "what causes tides",
        "q4": "",
        "q5": "how much sleep do adults need",
    }


def test_the_corpus_streams_what_can_be_indexed_each_id_once(dataset: BeirDataset) -> None:
    documents = list(dataset.corpus())
    assert [d.id for d in documents] == [
        "bread",
        "planets",
        "planets-copy",
        "sleep",
        "tides",
        "coffee",
    ]
    assert dataset.num_docs == len(documents)
    tides = next(d for d in documents if d.id == "tides")
    assert "moon's gravity" in tides.page_content  # the last record with that id
    assert documents[0].page_content.startswith("Bread Yeast")  # the BOM is not in the text
    assert next(d for d in documents if d.id == "sleep").page_content == "Sleep needs of adults"


def test_judged_documents_missing_from_the_corpus_count_in_the_ideal_dcg() -> None:
    # q1 judges two documents, one of them not in the corpus; finding the other at rank 1
    # is nDCG 1 / (1 + 1/log2(3)), as trec_eval computes it, not 1.0.
    ranking = {"q1": {"bread": -1.0}}
    kept = score_queries({"q1": {"bread": 1, "ghost-doc": 1}}, ranking, ["ndcg@10"])
    assert kept["q1"]["ndcg@10"] == pytest.approx(1 / (1 + 1 / 1.584962500721156))


def test_grades_of_zero_or_below_count_as_not_relevant() -> None:
    ranking = {"q": {"a": -1.0, "b": -2.0, "c": -3.0}}
    with_non_positive = score_queries(
        {"q": {"a": 0, "b": -1, "c": 1}}, ranking, ["ndcg@10", "recall@100", "mrr@10"]
    )
    only_relevant = score_queries({"q": {"c": 1}}, ranking, ["ndcg@10", "recall@100", "mrr@10"])
    assert with_non_positive["q"] == pytest.approx(only_relevant["q"])
    assert with_non_positive["q"]["mrr@10"] == pytest.approx(1 / 3)


def test_qrels_may_be_gzipped_and_grades_written_as_floats(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "test.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\r\nq\ta\t2.0\r\nq\tb\t0\r\n")
    read = read_qrels(path)
    assert read.qrels == {"q": {"a": 2, "b": 0}}
    assert read.non_positive == 1
    path.write_bytes(gzip.compress(b"query-id\tcorpus-id\tscore\nq\ta\t0.5\n"))
    with pytest.raises(
        InvalidDocumentError, match=r"test\.tsv\.gz:2: score '0\.5' is not an integer"
    ):
        read_qrels(path)


def test_file_traits_see_bom_and_crlf(tmp_path: Path) -> None:
    assert file_traits(QUIRKS / "corpus.jsonl") == (True, True)
    assert file_traits(QUIRKS / "queries.jsonl.gz") == (False, False)
    plain = tmp_path / "plain.tsv"
    plain.write_bytes(b"a\tb\nc\td\r\n")
    assert file_traits(plain) == (False, False)


# -- index sources: the lenient reading ----------------------------------------------------------


def test_entries_give_every_record_a_document_or_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text(
        '{"text": "fine", "id": 1}\n{"text": oops}\n{"text": "   ", "id": 3}\n'
        '["a list"]\n{"text": "also fine"}\n'
    )
    entries = list(open_source(path).entries())
    assert [type(e).__name__ for e in entries] == [
        "Document",
        "Rejected",
        "Rejected",
        "Rejected",
        "Document",
    ]
    rejected = [e for e in entries if isinstance(e, Rejected)]
    assert [r.where for r in rejected] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert [r.empty for r in rejected] == [False, True, False]
    assert rejected[0].to_json()["line"] == '{"text": oops}'
    assert rejected[1].doc_id == "3"
    assert isinstance(rejected[1].error, EmptyDocumentError)
    assert open_source(path).survey() == (2, 3)
    with pytest.raises(InvalidDocumentError, match=r"notes\.jsonl:2: not valid JSON"):
        open_source(path).scan()
