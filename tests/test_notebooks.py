"""The notebooks run top to bottom, in small-data mode, and show what they claim to.

Each notebook is executed in a fresh kernel by nbclient, in memory (the files on disk,
with the outputs of a full run, are left alone), with ``HYBRID_NOTEBOOK_SMALL=1``.
The saved notebooks are checked too: they depend on no data outside the package, and
the quickstart's saved run is the fast default one, under the default backend.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from hybrid_retriever.evaluation import DEFAULT_RUNS

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

pytestmark = pytest.mark.slow


def execute(name: str, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Run a notebook in a fresh kernel from its own folder; raise on the first error."""
    monkeypatch.setenv("HYBRID_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HYBRID_BEIR_FOLDER", raising=False)  # the default data: no BEIR
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
        coalesce_streams=True,
    )
    client.execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]


def text_of(notebook: nbformat.NotebookNode, marker: str | None = None) -> str:
    """What the notebook printed or displayed as text, in order; with ``marker``, only
    the outputs of the first code cell whose source contains it."""
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    if marker is not None:
        cells = [next(cell for cell in cells if marker in cell.source)]
    parts = []
    for out in (out for cell in cells for out in cell.outputs):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif "text/plain" in out.get("data", {}):
            parts.append(out["data"]["text/plain"])
    return "\n".join(parts)


def first_block(table: str) -> str:
    """A printed DataFrame's first block of columns (doc_id, fused, ...): a wide one (each
    branch's rank and score, three branches by default) wraps into blocks separated by a
    blank line, whose later blocks repeat the row numbers."""
    return table.split("\n\n", 1)[0]


def check_clean(notebook: nbformat.NotebookNode) -> None:
    """Every code cell ran, none has an error output, and no traceback went to stderr.

    (Warnings on stderr are allowed: a new release of a dependency may add some, and
    they do not stop a reader.)
    """
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.source.strip():
            assert cell.execution_count is not None, cell.source[:80]
    for out in outputs(notebook):
        assert out["output_type"] != "error", f"{out.get('ename')}: {out.get('evalue')}"
        if out["output_type"] == "stream" and out["name"] == "stderr":
            assert "Traceback" not in out["text"], out["text"][:1000]


def test_quickstart(monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = execute("01_quickstart.ipynb", monkeypatch)
    check_clean(notebook)
    text = text_of(notebook)
    # The results table shows the fused score and both branches' ranks and scores.
    for column in ("fused", "dense rank", "dense score", "sparse rank", "sparse score"):
        assert column in text
    # SPLADE's expansion of "why does bread dough rise" is decoded into tokens.
    assert re.search(r"bread\s+\d+\.\d+\s+True", text)
    # The recomputed dot product equals the sparse score the retriever reported.
    match = re.search(r"sum of products ([\d.]+); reported sparse score ([\d.]+)", text)
    assert match is not None and match.group(1) == match.group(2)
    # The filtered search returns only health documents from the demo set.
    filtered = first_block(text_of(notebook, "filter=health_demo_only"))
    rows = re.findall(r"^\d+\s+(\S+)\s+\d\.\d+", filtered, flags=re.MULTILINE)
    assert len(rows) == 3 and all(re.fullmatch(r"bio-\d\d", doc_id) for doc_id in rows), rows
    # ainvoke and asyncio.gather found the right documents.
    assert "hist-01 - The printing press" in text
    assert re.search(r"how long is a marathon\s+-> sport-01", text)
    # Both encoders run the default backend, int8 ONNX.
    assert re.search(r"dense: \S+ on onnx-int8\n\s*sparse: \S+ on onnx-int8", text), text[:2000]
    # The notebook's own text files are indexed, and a filter finds only them.
    mine = first_block(text_of(notebook, "filter=my_files_only"))
    rows = re.findall(r"^\d+\s+(\S+)\s+\d\.\d+", mine, flags=re.MULTILINE)
    assert rows and all(doc_id.endswith(".txt") for doc_id in rows), rows
    assert rows[0] == "offsite.txt"
    # Reopened from its folder with every document; a deleted one is gone.
    indexed = int(re.search(r"Indexed (\d+) documents", text).group(1))
    assert f"Reopened 'quickstart': {indexed} documents (indexed {indexed})" in text
    assert f"before: ['bike.txt'] {indexed}\nafter:  [] {indexed - 1}" in text
    after_delete = text_of(notebook, "reopened.delete(")
    assert "bike.txt" not in after_delete.split("after:", 1)[1]


def test_no_notebook_depends_on_this_repository_s_data() -> None:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            assert "shared/data" not in cell.source, (path.name, cell.source[:200])


def test_the_quickstart_names_the_default_fusion_convex() -> None:
    notebook = nbformat.read(NOTEBOOKS / "01_quickstart.ipynb", as_version=4)
    prose = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    assert "*convex* fusion" in prose
    # "adaptive" is another method, which the notebook may name, but never as the default
    # (as two of its cells once did).
    sentences = re.split(r"(?<=[.;:])\s+|\n", prose)
    assert not [s for s in sentences if "adaptive" in s and "default" in s]


def test_the_saved_quickstart_is_the_fast_default_run() -> None:
    """Its saved outputs come from the default settings: within 90 s (cell execution
    times, as nbclient recorded them), with both encoders under int8 ONNX."""
    notebook = nbformat.read(NOTEBOOKS / "01_quickstart.ipynb", as_version=4)
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    started = datetime.fromisoformat(cells[0].metadata["execution"]["iopub.execute_input"])
    ended = datetime.fromisoformat(cells[-1].metadata["execution"]["shell.execute_reply"])
    assert (ended - started).total_seconds() <= 90
    text = text_of(notebook)
    assert re.search(r"dense: \S+ on onnx-int8\n\s*sparse: \S+ on onnx-int8", text)
    assert "Counter({'demo': 36})" in text  # no BEIR corpus in the default run


def test_rag_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = execute("02_rag_chain.ipynb", monkeypatch)
    check_clean(notebook)
    text = text_of(notebook)
    answers = re.findall(r"^A: (.*)$", text, flags=re.MULTILINE)
    assert len(answers) == 5
    assert all(re.search(r"\[[\w-]+\]", answer) for answer in answers), answers
    match = re.search(
        r"right document first for (\d) of (\d) questions; (\d) of \d answers cite it", text
    )
    assert match is not None
    retrieved_right, total, cited_right = map(int, match.groups())
    assert retrieved_right == total == 5
    assert cited_right >= 3, text
    assert "Same answers as one by one: True" in text
    assert "sources: ['ir-02'" in text  # the streamed chain yields its documents first


def test_the_notebook_llm_loads_without_weight_repacking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Repacking weights into the CPU's extra buffer types crashed generation on a Xeon
    with AMX (issue 16). The notebook's model loads without it on every machine, so this
    fails wherever it would be loaded with it, AMX or not."""
    import llama_cpp

    monkeypatch.syspath_prepend(str(NOTEBOOKS))
    from local_llm import load_smollm2, loaded_with_extra_buffers

    llm = load_smollm2(max_tokens=8)
    assert llm._llama._model.params.use_extra_bufts is False  # what the model loaded with
    assert not loaded_with_extra_buffers(llm._llama)
    assert llama_cpp.llama_model_default_params().use_extra_bufts  # the default: restored
    assert llm.invoke("Say hello.").content


def test_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = execute("03_evaluation.ipynb", monkeypatch)
    check_clean(notebook)
    text = text_of(notebook)
    # Every run of the harness is in the scores table, whatever runs there are.
    summary = text.split("p50 ms", 1)[1]
    for spec in DEFAULT_RUNS:
        assert re.search(rf"^{re.escape(spec.name)}\s+\d\.\d+", summary, flags=re.MULTILINE)
    images = [out for out in outputs(notebook) if "image/png" in out.get("data", {})]
    assert len(images) == 2  # metrics + Recall@k, and the per-query scatter
    assert "The branches disagree on" in text
