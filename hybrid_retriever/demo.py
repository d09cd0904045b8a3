"""The main job: index the bundled demo corpus and answer a few queries.

    python -m hybrid_retriever.demo              # in memory
    python -m hybrid_retriever.demo --path ./qdrant_demo "my own question"

The first line says which runtime each encoder runs (``onnx-int8``, the default, wherever
onnxruntime is installed), since the vectors, and so the scores below, depend on it.
Each result shows the fused score and, per branch, the rank and raw score, so you can
see why a document ranked where it did. The README's quickstart shows this module's
output for its default questions (``tests/test_demo_output.py`` keeps them equal).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources

from langchain_core.documents import Document

from hybrid_retriever.encoders.backend import EncoderBackend
from hybrid_retriever.fusion.branches import ALL_BRANCHES
from hybrid_retriever.retriever import HybridRetriever

DEFAULT_QUESTIONS = (
    "what causes type 2 diabetes?",
    "combining keyword and vector search results",
)
"""Two questions: one both branches agree on, one where fusion reorders them."""


def demo_documents() -> Iterator[Document]:
    """The few dozen short documents shipped with the package."""
    text = resources.files("hybrid_retriever").joinpath("data/demo_corpus.jsonl").read_text()
    for line in text.splitlines():
        record = json.loads(line)
        yield Document(id=record["id"], page_content=record["text"], metadata=record["metadata"])


def describe_encoders(encoders: Mapping[str, object]) -> str:
    """Each encoder's model and the runtime it runs in (``onnx-int8``, ``torch``, ...),
    with a warning when PyTorch stands in for the default, whose vectors differ."""
    parts, torch = [], False
    for branch, encoder in encoders.items():
        backend = getattr(encoder, "backend", None)  # custom encoders need not say
        torch = torch or backend is EncoderBackend.TORCH
        runtime = "its own runtime" if backend is None else backend.value
        parts.append(f"{branch} {getattr(encoder, 'name', type(encoder).__name__)} on {runtime}")
    line = "Encoders: " + ", ".join(parts) + "."
    if torch:
        line += (
            "\nPyTorch runs instead of the default, int8 ONNX Runtime (is onnxruntime "
            "installed? pip install onnxruntime onnx): the scores differ from the README's."
        )
    return line


def format_results(documents: Sequence[Document], *, width: int = 60) -> str:
    """A text table: rank, fused score, each searched branch's rank and score (dense,
    sparse, bm25), topic and snippet."""
    branches = [b for b in ALL_BRANCHES if any(b in d.metadata["_ranks"] for d in documents)]
    columns = "".join(f"{b:>13}  " for b in branches)
    lines = [f"{'#':>2}  {'fused':>7}  {columns}{'topic':<9}  text"]
    for rank, doc in enumerate(documents, start=1):
        ranks, scores = doc.metadata["_ranks"], doc.metadata["_scores"]
        cells = "".join(
            f"{'-' if ranks[b] is None else f'#{ranks[b]} {scores[b]:.3f}':>13}  " for b in branches
        )
        snippet = (
            doc.page_content
            if len(doc.page_content) <= width
            else (doc.page_content[: width - 1] + "…")
        )
        lines.append(
            f"{rank:>2}  {doc.metadata['_score']:.5f}  {cells}"
            f"{doc.metadata.get('topic', ''):<9}  {snippet}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Index the demo corpus and search it.")
    parser.add_argument("questions", nargs="*", help="questions to ask (default: a few examples)")
    parser.add_argument("--path", help="on-disk Qdrant folder (default: in memory)")
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args(argv)

    location = {"path": args.path} if args.path else {"location": ":memory:"}
    retriever = HybridRetriever.from_documents(
        demo_documents(), collection_name="demo", show_progress=False, **location
    )
    print(describe_encoders({"dense": retriever.dense_encoder, "sparse": retriever.sparse_encoder}))
    print(f"Indexed {retriever.count()} documents into collection 'demo'.\n")
    for question in args.questions or DEFAULT_QUESTIONS:
        print(f"Q: {question}")
        print(format_results(retriever.invoke(question, k=args.k)))
        print()
    retriever.close()


if __name__ == "__main__":
    main()
