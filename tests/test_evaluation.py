"""BEIR loading, index sources and the metric plumbing (ranx), on small hand-made data.

No model is loaded here: these are the parts of evaluation that must be right before
any retrieval happens. The metrics are checked against values worked out by hand.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from hybrid_retriever.errors import InvalidDocumentError
from hybrid_retriever.evaluation import (
    DEFAULT_METRICS,
    RunResult,
    beir_corpus,
    beir_qrels,
    load_beir,
    metric_names,
    percentile,
    score_queries,
    score_run,
)
from hybrid_retriever.sources import (
    DOC_ID_KEY,
    SourceKind,
    SourceNotFoundError,
    open_source,
    read_jsonl,
)


def write_beir(
    folder: Path,
    corpus: list[dict[str, object]],
    queries: dict[str, str],
    qrels: list[tuple[str, str, int]],
    *,
    split: str = "test",
) -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items())
    )
    rows = "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels)
    (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


# -- metrics, worked out by hand -----------------------------------------------------------------

# Three queries. Grades: q1 has two relevant documents (grade 1 each), q2 has a highly
# relevant one (grade 2) and a relevant one (grade 1), q3 has one relevant document.
QRELS = {
    "q1": {"d1": 1, "d3": 1},
    "q2": {"d2": 2, "d4": 1},
    "q3": {"d5": 1},
}
# Rankings as run_retriever makes them: score = -rank, so ranx sees exactly this order.
RANKED = {
    "q1": ["d3", "d2", "d1"],  # relevant at ranks 1 and 3
    "q2": ["d9", "d4", "d2"],  # grade 1 at rank 2, grade 2 at rank 3
    "q3": ["d7", "d8"],  # nothing relevant
}
RUN = {q: {d: -float(rank) for rank, d in enumerate(ids, start=1)} for q, ids in RANKED.items()}

LOG2_3 = math.log2(3)  # 1.5849625...

# nDCG with linear gain (BEIR / pytrec_eval convention): DCG = sum(grade / log2(rank + 1)).
# q1: DCG  = 1/log2(2) + 1/log2(4)       = 1 + 0.5               = 1.5
#     IDCG = 1/log2(2) + 1/log2(3)       = 1 + 0.6309298         = 1.6309298
#     nDCG = 1.5 / 1.6309298             = 0.9197208
# q2: DCG  = 1/log2(3) + 2/log2(4)       = 0.6309298 + 1         = 1.6309298
#     IDCG = 2/log2(2) + 1/log2(3)       = 2 + 0.6309298         = 2.6309298
#     nDCG = 1.6309298 / 2.6309298       = 0.6199062
# q3: nDCG = 0
NDCG = {"q1": 1.5 / (1 + 1 / LOG2_3), "q2": (1 / LOG2_3 + 1) / (2 + 1 / LOG2_3), "q3": 0.0}
# Recall@100: relevant retrieved / relevant. q1: 2/2, q2: 2/2, q3: 0/1.
RECALL = {"q1": 1.0, "q2": 1.0, "q3": 0.0}
# MRR@10: 1 / rank of the first relevant. q1: 1/1, q2: 1/2, q3: 0.
MRR = {"q1": 1.0, "q2": 0.5, "q3": 0.0}


def test_score_run_matches_hand_computed_means() -> None:
    scores = score_run(QRELS, RUN)

    assert set(scores) == set(DEFAULT_METRICS) == {"ndcg@10", "recall@100", "mrr@10"}
    # Means over the three queries:
    # nDCG@10    = (0.9197208 + 0.6199062 + 0) / 3 = 0.5132090
    # Recall@100 = (1 + 1 + 0) / 3                 = 0.6666667
    # MRR@10     = (1 + 0.5 + 0) / 3               = 0.5
    assert scores["ndcg@10"] == pytest.approx(0.5132090, abs=1e-6)
    assert scores["recall@100"] == pytest.approx(2 / 3)
    assert scores["mrr@10"] == pytest.approx(0.5)


def test_score_queries_matches_hand_computed_values_per_query() -> None:
    per_query = score_queries(QRELS, RUN)

    assert set(per_query) == {"q1", "q2", "q3"}
    for query in per_query:
        assert per_query[query]["ndcg@10"] == pytest.approx(NDCG[query], abs=1e-9)
        assert per_query[query]["recall@100"] == pytest.approx(RECALL[query])
        assert per_query[query]["mrr@10"] == pytest.approx(MRR[query])
    assert NDCG["q1"] == pytest.approx(0.9197208, abs=1e-7)
    assert NDCG["q2"] == pytest.approx(0.6199062, abs=1e-7)


def test_cutoff_follows_k() -> None:
    assert metric_names(10) == DEFAULT_METRICS
    metrics = metric_names(2)
    assert metrics == ("ndcg@2", "recall@100", "mrr@2")

    per_query = score_queries(QRELS, RUN, metrics)

    # Only ranks 1-2 count now.
    # q1: DCG@2 = 1/log2(2) = 1 (d1 at rank 3 is cut); IDCG@2 = 1 + 1/log2(3) -> 0.6131472
    # q2: DCG@2 = 1/log2(3) (d4, grade 1); IDCG@2 = 2 + 1/log2(3)            -> 0.2398124
    # MRR@2: q1 = 1, q2 = 1/2 (rank 2 is inside the cutoff), q3 = 0.
    assert per_query["q1"]["ndcg@2"] == pytest.approx(1 / (1 + 1 / LOG2_3))
    assert per_query["q1"]["ndcg@2"] == pytest.approx(0.6131472, abs=1e-7)
    assert per_query["q2"]["ndcg@2"] == pytest.approx((1 / LOG2_3) / (2 + 1 / LOG2_3))
    assert per_query["q2"]["ndcg@2"] == pytest.approx(0.2398124, abs=1e-7)
    assert [per_query[q]["mrr@2"] for q in ("q1", "q2", "q3")] == pytest.approx([1, 0.5, 0])
    # Recall stays at 100: unchanged.
    assert [per_query[q]["recall@100"] for q in ("q1", "q2", "q3")] == [1.0, 1.0, 0.0]


def test_a_query_that_retrieved_nothing_scores_zero_and_unjudged_queries_are_ignored() -> None:
    ranking = {"q1": {}, "q2": RUN["q2"], "not-judged": {"d1": -1.0}}

    per_query = score_queries(QRELS, ranking)

    assert set(per_query) == {"q1", "q2"}  # q3 was not run, not-judged has no qrels
    assert per_query["q1"] == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
    assert per_query["q2"]["mrr@10"] == pytest.approx(0.5)


def test_run_result_ranked_ids_restores_the_order() -> None:
    result = RunResult(ranking=RUN)
    assert result.ranked_ids("q2") == ["d9", "d4", "d2"]
    assert result.ranked_ids("missing") == []


def test_percentile_interpolates_like_numpy() -> None:
    values = [40.0, 10.0, 30.0, 20.0]
    assert percentile(values, 50) == pytest.approx(25.0)  # between 20 and 30
    # 95th: position 0.95 * 3 = 2.85 -> 30 + 0.85 * (40 - 30)
    assert percentile(values, 95) == pytest.approx(38.5)
    assert percentile([7.0], 95) == 7.0
    assert math.isnan(percentile([], 50))


# -- BEIR datasets -------------------------------------------------------------------------------

CORPUS: list[dict[str, object]] = [
    {"_id": "d1", "title": "Bread", "text": "Yeast makes dough rise."},
    {"_id": "d2", "title": "", "text": "Planets orbit stars."},
    {"_id": 3, "title": "Sleep", "text": "Adults need sleep."},
]


def test_load_beir_keeps_only_judged_queries_and_counts_the_corpus(tmp_path: Path) -> None:
    folder = write_beir(
        tmp_path / "toy",
        CORPUS,
        {"q1": "bread", "q2": "planets", "q-unjudged": "nothing"},
        [("q1", "d1", 1), ("q2", "d2", 1), ("q2", "3", 0)],
    )

    dataset = load_beir(folder, "test")

    assert dataset.name == "toy"
    assert dataset.num_docs == 3
    assert dataset.queries == {"q1": "bread", "q2": "planets"}
    assert dataset.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1, "3": 0}}
    documents = list(dataset.corpus())
    assert [d.id for d in documents] == ["d1", "d2", "3"]
    assert documents[0].page_content == "Bread Yeast makes dough rise."
    assert documents[1].page_content == "Planets orbit stars."  # no title, no leading space
    assert documents[2].metadata == {DOC_ID_KEY: "3", "title": "Sleep"}


def test_qrels_naming_unknown_ids_are_kept_and_reported_with_the_ids_and_their_number(
    tmp_path: Path,
) -> None:
    folder = write_beir(
        tmp_path / "toy",
        CORPUS,
        {"q1": "bread"},
        [("q1", "d1", 1), ("q1", "ghost-1", 1), ("q1", "ghost-2", 1), ("q9", "d2", 1)],
    )

    dataset = load_beir(folder, "test")

    messages = " ".join(q.message for q in dataset.quirks)
    assert "names 2 document ids not in corpus.jsonl ('ghost-1', 'ghost-2'; 2 judgements)" in (
        messages
    )
    assert "judges 1 query id not in queries.jsonl ('q9')" in messages
    assert "qrels/test.tsv" in messages
    assert dataset.qrels["q1"] == {"d1": 1, "ghost-1": 1, "ghost-2": 1}  # as BEIR scores them
    assert dataset.queries == {"q1": "bread"}


def test_many_unknown_ids_are_listed_in_part(tmp_path: Path) -> None:
    ghosts = [("q1", f"ghost-{i:02d}", 1) for i in range(25)]
    folder = write_beir(tmp_path / "toy", CORPUS, {"q1": "bread"}, ghosts)

    (unknown,) = (q for q in load_beir(folder, "test").quirks if q.count == 25)
    assert "25 document ids not in corpus.jsonl" in unknown.message
    assert "'ghost-04', ... (20 more)" in unknown.message


def test_missing_dataset_parts_are_reported(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        load_beir(tmp_path / "nowhere", "test")
    folder = write_beir(tmp_path / "toy", CORPUS, {"q1": "bread"}, [("q1", "d1", 1)])
    with pytest.raises(SourceNotFoundError, match=r"train\.tsv does not exist.*\['test'\]"):
        load_beir(folder, "train")
    # Still a FileNotFoundError, for callers that caught that before.
    with pytest.raises(FileNotFoundError):
        list(beir_corpus(tmp_path))


def test_malformed_files_are_reported_with_file_and_line(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "toy", CORPUS, {"q1": "bread"}, [("q1", "d1", 1)])
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\thigh\n")
    with pytest.raises(InvalidDocumentError, match=r"test\.tsv:2: score 'high'"):
        beir_qrels(folder, "test")
    (folder / "qrels" / "test.tsv").write_text("qid\tdid\n")
    with pytest.raises(InvalidDocumentError, match=r"test\.tsv:1: the header lacks"):
        beir_qrels(folder, "test")
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n\n{"_id": "d2", "text": \n')
    with pytest.raises(InvalidDocumentError, match=r"corpus\.jsonl:3: not valid JSON"):
        list(beir_corpus(folder))
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{"text": "no id"}\n')
    with pytest.raises(InvalidDocumentError, match=r"corpus\.jsonl:2: the record has no '_id'"):
        list(beir_corpus(folder))


# -- index sources -------------------------------------------------------------------------------


def test_a_beir_folder_is_read_as_beir_gzipped_or_not(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "toy", CORPUS, {"q1": "bread"}, [("q1", "d1", 1)])
    source = open_source(folder)
    assert source.kind is SourceKind.BEIR
    assert source.scan() == 3

    gz = tmp_path / "gz"
    gz.mkdir()
    with gzip.open(gz / "corpus.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in CORPUS)
    source = open_source(gz)
    assert source.kind is SourceKind.BEIR
    assert [d.id for d in source] == ["d1", "d2", "3"]


def test_jsonl_records_keep_ids_titles_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    records = [
        {"_id": "a", "text": "Yeast.", "title": "Bread", "metadata": {"topic": "cooking"}},
        {"id": 7, "text": "Planets.", "lang": "en"},
        {"text": "No id at all.", "metadata": {"topic": "misc"}},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")

    source = open_source(path)
    documents = list(source)

    assert source.kind is SourceKind.JSONL
    assert source.scan() == 3
    assert documents[0].id == "a"
    assert documents[0].page_content == "Bread Yeast."
    assert documents[0].metadata == {"topic": "cooking", "title": "Bread", DOC_ID_KEY: "a"}
    assert documents[1].id == "7"
    assert documents[1].metadata == {"lang": "en", DOC_ID_KEY: "7"}  # extra keys are metadata
    assert documents[2].id is None  # the point id will come from the content
    assert documents[2].metadata == {"topic": "misc"}
    assert list(read_jsonl(path)) == records


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "ok"', r"notes\.jsonl:2: not valid JSON"),
        ('["a", "list"]', r"notes\.jsonl:2: expected a JSON object, got array"),
        ('{"title": "no text"}', r"notes\.jsonl:2: the record needs a non-empty 'text'"),
        ('{"text": "   "}', r"notes\.jsonl:2: the record needs a non-empty 'text'"),
        ('{"text": "x", "metadata": [1]}', r"notes\.jsonl:2: 'metadata' is a list"),
        ('{"text": "x", "id": 1.5}', r"notes\.jsonl:2: 'id' is 1\.5"),
    ],
)
def test_bad_jsonl_records_name_file_and_line_when_scanned(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text('{"text": "fine"}\n' + line + "\n")

    with pytest.raises(InvalidDocumentError, match=message):
        open_source(path).scan()


def test_a_folder_of_text_files_uses_relative_paths_as_ids(tmp_path: Path) -> None:
    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    (root / "b.md").write_text("# Bread\nYeast makes dough rise.\n")
    (root / "a.txt").write_text("Planets orbit stars.")
    (root / "sub" / "c.TXT").write_text("Sleep matters.")
    (root / "blank.txt").write_text("  \n")
    (root / "empty.txt").write_text("")
    (root / "image.png").write_bytes(b"\x89PNG")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.txt").write_text("not indexed")

    source = open_source(root)
    documents = list(source)

    assert source.kind is SourceKind.TEXT
    assert [d.id for d in documents] == ["a.txt", "b.md", "sub/c.TXT"]  # blank, empty skipped
    assert documents[1].page_content == "# Bread\nYeast makes dough rise."
    assert documents[2].metadata == {
        DOC_ID_KEY: "sub/c.TXT",
        "source": "sub/c.TXT",
        "folder": "sub",
    }
    assert source.scan() == 3  # files are read and checked to count them: blank.txt is not

    single = open_source(root / "b.md")
    assert [d.id for d in single] == ["b.md"]


def test_sources_that_cannot_be_read_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        open_source(tmp_path / "missing")
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(SourceNotFoundError, match="not a source this tool reads"):
        open_source(tmp_path / "data.csv")
    (tmp_path / "only-images").mkdir()
    with pytest.raises(SourceNotFoundError, match=r"neither corpus\.jsonl"):
        open_source(tmp_path / "only-images")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(InvalidDocumentError, match=r"latin1\.txt: not UTF-8"):
        list(open_source(tmp_path / "latin1.txt"))
