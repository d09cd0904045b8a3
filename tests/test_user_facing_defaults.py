"""What a new user meets on a first run: the default runtime is installed and named, the
first run is quiet, and the names and defaults agree across Python and the CLI."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_text_splitters import TextSplitter

from hybrid_retriever import (
    CollectionNotFoundError,
    HybridRetriever,
    HybridTextSplitter,
    HybridVectorStore,
    InvalidParameterError,
    SentenceTransformerEncoder,
    SpladeEncoder,
)
from hybrid_retriever.advice import command_line
from hybrid_retriever.cli import build_parser, main
from hybrid_retriever.evaluation import quiet_ranx
from hybrid_retriever.fusion.config import FusionConfig
from hybrid_retriever.storage.connect import LOCATION_ENV, default_location
from hybrid_retriever.truncation import TruncationTally

ROOT = Path(__file__).resolve().parent.parent


def test_every_install_gets_the_int8_onnx_runtime() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip() for d in project["dependencies"]}
    assert {"onnxruntime", "onnx", "platformdirs"} <= names
    assert project["optional-dependencies"]["onnx"] == []  # an alias kept for old commands


def test_a_first_run_exports_quietly_and_logs_its_runtime_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A fresh export cache: ONNX Runtime's quantizer advice stays hidden; one INFO line
    on the package's logger names the runtime."""
    encoder = SentenceTransformerEncoder(onnx_cache_dir=tmp_path)
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoder.encode_query("bread")
        encoder.encode_query("yeast")
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    lines = [
        (r.name, r.levelno, r.getMessage())
        for r in caplog.records
        if r.name.startswith("hybrid_retriever")
    ]
    assert lines == [
        (
            "hybrid_retriever.encoders.onnx_model",
            logging.INFO,
            "dense encoder all-MiniLM-L6-v2: ONNX Runtime int8",
        )
    ]


def test_the_torch_runtime_is_named_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hybrid_retriever")
    encoder = SentenceTransformerEncoder(backend="torch")
    encoder._onnx.model()
    assert [r.getMessage() for r in caplog.records] == [
        "dense encoder all-MiniLM-L6-v2: PyTorch (backend='torch')"
    ]


def test_a_mistyped_model_name_lists_the_known_short_names(tmp_path: Path) -> None:
    from hybrid_retriever import ModelLoadError

    with pytest.raises(ModelLoadError) as caught:
        SentenceTransformerEncoder("all-MiniLM-L6-v3", onnx_cache_dir=tmp_path).encode_query("x")
    message = str(caught.value)
    assert "Did you mean 'all-MiniLM-L6-v2'?" in message
    assert "all-MiniLM-L6-v2, splade-tiny" in message
    assert "HF_HUB_OFFLINE" not in message and "backend='torch'" not in message
    with pytest.raises(ModelLoadError) as caught:
        SentenceTransformerEncoder("all-MiniLM-L6-v3", backend="torch").encode_query("x")
    message = str(caught.value)
    assert "Did you mean 'all-MiniLM-L6-v2'?" in message
    assert "HF_HUB_OFFLINE" not in message


# -- one default location; reading creates nothing; not-found says what is there -------------


def test_one_default_location_rule(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dense_encoder: SentenceTransformerEncoder,
    sparse_encoder: SpladeEncoder,
) -> None:
    monkeypatch.delenv(LOCATION_ENV, raising=False)
    assert default_location() is None  # Python: a temporary folder
    assert default_location(command_line=True) == Path("qdrant_data")
    monkeypatch.setenv(LOCATION_ENV, str(tmp_path / "data"))
    assert default_location() == default_location(command_line=True) == tmp_path / "data"
    # Python follows the variable too: the collection lands there, and is found again.
    HybridRetriever.from_texts(
        ["Yeast makes bread rise."],
        collection_name="notes",
        dense_encoder=dense_encoder,
        sparse_encoder=sparse_encoder,
        show_progress=False,
    ).close()
    assert (tmp_path / "data" / "notes").is_dir()
    reopened = HybridRetriever(
        collection_name="notes", dense_encoder=dense_encoder, sparse_encoder=sparse_encoder
    )
    assert reopened.count() == 1
    reopened.close()


def test_reading_a_missing_folder_creates_nothing(
    tmp_path: Path, dense_encoder: SentenceTransformerEncoder, sparse_encoder: SpladeEncoder
) -> None:
    nope = tmp_path / "nope"
    retriever = HybridRetriever(
        collection_name="c", path=nope, dense_encoder=dense_encoder, sparse_encoder=sparse_encoder
    )
    for read in (
        lambda: retriever.invoke("bread"),
        retriever.count,
        lambda: retriever.get_by_ids(["a"]),
    ):
        with pytest.raises(CollectionNotFoundError, match="It holds no collection"):
            read()
    retriever.close()
    assert not nope.exists()


def test_not_found_lists_the_collections_there(
    tmp_path: Path, dense_encoder: SentenceTransformerEncoder, sparse_encoder: SpladeEncoder
) -> None:
    encoders = {"dense_encoder": dense_encoder, "sparse_encoder": sparse_encoder}
    for name in ("beta", "alpha"):
        HybridRetriever.from_texts(
            [f"{name} text"], collection_name=name, path=tmp_path, show_progress=False, **encoders
        ).close()
    typo = HybridRetriever(collection_name="alpah", path=tmp_path, **encoders)
    with pytest.raises(CollectionNotFoundError) as caught:
        typo.invoke("text")
    message = str(caught.value)
    assert f"does not exist in EdgeStorage(path={str(tmp_path)!r})" in message
    assert "Collections there: alpha, beta." in message
    assert "HybridRetriever.from_documents" in message
    with command_line(), pytest.raises(CollectionNotFoundError) as caught:
        typo.count()
    message = str(caught.value)
    assert "Collections there: alpha, beta." in message
    assert "hybrid-retriever index SOURCE --collection alpah" in message
    assert "from_documents" not in message
    typo.close()


# -- delete answers as LangChain's VectorStore.delete -----------------------------------------


async def test_delete_returns_true_known_or_not(
    dense_encoder: SentenceTransformerEncoder, sparse_encoder: SpladeEncoder
) -> None:
    store = HybridVectorStore.from_texts(
        ["Yeast makes bread rise.", "Planets orbit stars."],
        ids=["bread", "planets"],
        dense_encoder=dense_encoder,
        sparse_encoder=sparse_encoder,
        show_progress=False,
    )
    retriever = store.retriever
    assert retriever.delete(["bread"]) is True
    assert retriever.delete(["no-such-id"]) is True  # nothing by that id is stored afterwards
    assert await retriever.adelete(["planets"]) is True
    assert store.delete(["no-such-id"]) is True
    assert retriever.count() == 0
    retriever.close()


# -- HybridTextSplitter -----------------------------------------------------------------------


LONG_TEXT = " ".join(f"Sentence {i} says yeast ferments the sugars in dough." for i in range(120))


def test_text_splitter_defaults_to_what_the_encoders_read() -> None:
    splitter = HybridTextSplitter()
    assert isinstance(splitter, TextSplitter)
    # all-MiniLM-L6-v2 reads 256 tokens (SPLADE 512): 254 besides [CLS] and [SEP].
    assert (splitter.chunk_tokens, splitter.overlap) == (254, 31)
    chunks = splitter.split_text(LONG_TEXT)
    assert len(chunks) > 1
    tokenizer = SentenceTransformerEncoder().model.tokenizer
    assert all(len(tokenizer(c, add_special_tokens=False)["input_ids"]) <= 254 for c in chunks)
    assert splitter.split_text("Short.") == ["Short."]


def test_text_splitter_keeps_metadata_and_ids(demo_retriever: HybridRetriever) -> None:
    splitter = HybridTextSplitter.for_retriever(demo_retriever, chunk_tokens=40, overlap=5)
    assert (splitter.chunk_tokens, splitter.overlap) == (40, 5)
    long = Document(id="notes.md", page_content=LONG_TEXT, metadata={"topic": "bread"})
    short = Document(page_content="Short.", metadata={"topic": "misc"})
    chunks = splitter.split_documents([long, short])
    *pieces, last = chunks
    assert last.page_content == "Short." and last.metadata == {"topic": "misc"}
    assert [p.id for p in pieces] == [f"notes.md#{n}" for n in range(len(pieces))]
    for number, piece in enumerate(pieces):
        start, end = piece.metadata["chunk_chars"]
        assert piece.page_content == LONG_TEXT[start:end]
        assert piece.metadata == {
            "topic": "bread",
            "chunk": number,
            "chunk_chars": [start, end],
            "doc_id": f"notes.md#{number}",
            "source_id": "notes.md",
        }
    # LangChain's own entry points go through the same splitting.
    created = splitter.create_documents([LONG_TEXT], [{"topic": "bread"}])
    assert [d.page_content for d in created] == [p.page_content for p in pieces]
    assert splitter.transform_documents([short]) == [short]


def test_text_splitter_refuses_chunks_the_encoders_would_cut(
    demo_retriever: HybridRetriever,
) -> None:
    with pytest.raises(InvalidParameterError, match="more than the encoders read \\(254"):
        HybridTextSplitter.for_retriever(demo_retriever, chunk_tokens=600)
    with pytest.raises(InvalidParameterError, match="overlap_tokens < chunk_tokens"):
        HybridTextSplitter.for_retriever(demo_retriever, chunk_tokens=10, overlap=10)


# -- advice for the command line; quiet ranx --------------------------------------------------


def test_truncation_advice_follows_where_it_runs() -> None:
    tally = TruncationTally(encoders={}, counts={"dense": 1}, limits={"dense": 256}, seen=2)
    python = tally.message()
    assert python is not None and "HybridTextSplitter" in python
    assert "RecursiveCharacterTextSplitter" not in python
    with command_line():
        cli = tally.message()
    assert cli is not None and "eval --chunking" in cli and "HybridTextSplitter" not in cli


def test_ranx_numba_notes_are_hidden() -> None:
    from numba.core.errors import NumbaTypeSafetyWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_ranx():
            warnings.warn("unsafe cast from uint64 to int64", NumbaTypeSafetyWarning, stacklevel=1)
    assert caught == []


# -- the command line: the documented sequence and its defaults ------------------------------

CORPUS = {
    "d1": "Yeast ferments sugars in bread dough and releases carbon dioxide.",
    "d2": "A sourdough starter is wild yeast and lactic acid bacteria.",
    "d3": "Fresh pasta is made from flour and eggs, kneaded and rolled thin.",
    "d4": "Astronomers find planets around other stars by the dip in starlight.",
    "d5": "A planet makes its host star wobble, which reveals it.",
    "d6": "Comets are icy bodies that release gas near the Sun.",
    "d7": "Type 2 diabetes develops when cells become resistant to insulin.",
    "d8": "Aerobic exercise improves insulin sensitivity.",
    "d9": "Adults need seven to nine hours of sleep.",
    "d10": "Sugar browns when it is heated above 160 degrees.",
}
QUERIES = {
    "q1": ("why does bread dough rise", "d1"),
    "q2": ("how are planets around other stars detected", "d4"),
    "q3": ("what causes type 2 diabetes", "d7"),
}


def write_tiny_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in CORPUS.items())
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, (t, _) in QUERIES.items())
    )
    for split, queries in (("train", ["q1", "q2"]), ("test", ["q3"])):
        rows = "".join(f"{q}\t{QUERIES[q][1]}\t1\n" for q in queries)
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


@pytest.mark.slow
def test_tune_then_search_with_the_saved_config_as_documented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tune DATA --split train --out fusion.json`, then `search ... --fusion-config
    fusion.json`: both in the default folder (./qdrant_data), collection named after DATA."""
    data = write_tiny_beir(tmp_path / "tiny")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(LOCATION_ENV, raising=False)
    tune = ["tune", str(data), "--split", "train", "--folds", "2", "--no-progress"]
    assert main([*tune, "--out", "fusion.json"]) == 0
    printed = capsys.readouterr().out
    assert "convex (default)" in printed
    assert "--fusion-config fusion.json" in printed and "fusion_config='fusion.json'" in printed
    config = FusionConfig.load(tmp_path / "fusion.json")
    assert (tmp_path / "qdrant_data" / "tiny").is_dir()
    query = ["search", "why does bread dough rise", "--collection", "tiny", "--json"]
    assert main([*query, "--fusion-config", "fusion.json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["fusion"] == config.method.value
    assert found["mode"] == "convex"
    assert len(found["results"]) == 4  # --k defaults to 4, as Python's k
    assert found["results"][0]["id"] == "d1"


def test_search_defaults_match_python() -> None:
    args = build_parser().parse_args(["search", "q", "--collection", "c"])
    assert (args.k, args.mode) == (4, "convex")
    assert build_parser().parse_args(["tune", "data"]).out == Path("fusion.json")


def test_cli_search_reads_without_creating_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(LOCATION_ENV, raising=False)
    assert main(["search", "q", "--collection", "notes"]) == 1
    assert main(["search", "q", "--collection", "notes", "--path", "nope"]) == 1
    errors = capsys.readouterr().err
    assert "No data at qdrant_data" in errors and "No data at nope" in errors
    assert "hybrid-retriever index SOURCE --collection notes" in errors
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_index_names_the_collection_after_its_source_and_counts_in_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "one note.jsonl"
    source.write_text(json.dumps({"id": "n1", "text": "Yeast makes bread rise."}) + "\n")
    assert main(["index", str(source), "--path", str(tmp_path / "q"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Indexed 1 document as 1 passage from" in printed
    assert "; 1 point in the collection" in printed
    assert "into collection 'one-note'" in printed
