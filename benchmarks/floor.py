"""The floor under each encoder pass: the model's int8 matrix products, and nothing else.

For each default encoder, the products with weights (every ``MatMul`` whose second input
is a constant of the fp32 export) are chained, in graph order, into a graph of those
products alone; the SPLADE one ends in the max over tokens, as the model does. The chain
is quantised exactly as the shipped graph is (``onnx_export._quantize``) and run by the
same ONNX Runtime sessions the library makes (``onnx_model._session``):

* documents: the corpus's first ``--docs`` documents at their own token counts, one per
  run, on all cores with spinning threads, as ``add_documents`` runs them;
* queries: the test queries, one per run, on one thread, as ``invoke`` runs them.

The full model and the chain take turns, a block of texts each (the same texts), so
the machine's drift (a third, over minutes, on this project's VM) hits both alike; not
text by text, because a spinning session's threads would still be spinning while the
other session runs. The products get random weights scaled to keep activations near 1
(the integer kernels' time does not depend on the values). What the chain leaves out
(attention's own products, softmax, normalisation, GELU, the embeddings, tokenisation)
only adds time, so its rate bounds the model's from above.

    python benchmarks/floor.py --data ../shared/data/scifact --out benchmarks/results/floor.json

Not part of CI.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_retriever import SentenceTransformerEncoder, SpladeEncoder
from hybrid_retriever.encoders.onnx_export import MODEL_FILE, _quantize, exported_model
from hybrid_retriever.encoders.onnx_model import OnnxModel, _cores, _session
from hybrid_retriever.evaluation import beir_corpus, beir_qrels, beir_queries
from hybrid_retriever.machine import machine_info
from hybrid_retriever.model_catalog import DEFAULT_DENSE_MODEL, DEFAULT_SPARSE_MODEL

ROUNDS = 3

#: Texts per turn of the model and of the chain.
BLOCK = 50


def weight_shapes(fp32_graph: Path) -> list[tuple[int, int]]:
    """(in, out) of every product with a constant weight, in graph order."""
    import onnx

    graph = onnx.load(str(fp32_graph)).graph
    constants = {i.name: tuple(i.dims) for i in graph.initializer}
    return [
        (int(constants[n.input[1]][0]), int(constants[n.input[1]][1]))
        for n in graph.node
        if n.op_type == "MatMul" and n.input[1] in constants
    ]


def products_graph(shapes: list[tuple[int, int]], path: Path, *, max_over_tokens: bool) -> None:
    """A chain ``x @ W1 @ W2 ...`` of those shapes (each one's output the next one's input),
    int8 as shipped; ``max_over_tokens``: the last output is reduced over tokens."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    for (_, out), (following, _) in itertools.pairwise(shapes):
        if out != following:
            raise SystemExit(f"the products do not chain: {shapes}")
    random = np.random.default_rng(0)
    weights, nodes, current = [], [], "x"
    for i, (rows, columns) in enumerate(shapes):
        weight = (random.standard_normal((rows, columns)) / np.sqrt(rows)).astype(np.float32)
        weights.append(numpy_helper.from_array(weight, name=f"w{i}"))
        nodes.append(helper.make_node("MatMul", [current, f"w{i}"], [f"y{i}"]))
        current = f"y{i}"
    if max_over_tokens:
        nodes.append(helper.make_node("ReduceMax", [current], ["out"], axes=[0], keepdims=0))
        current = "out"
    graph = helper.make_graph(
        nodes,
        "products",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["tokens", shapes[0][0]])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, None)],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    _quantize(path)


def time_ms(run: Any, lengths: list[int], width: int) -> list[float]:
    times = []
    for n in lengths:
        feed = np.ones((n, width), dtype=np.float32)
        start = time.perf_counter()
        run(feed)
        times.append((time.perf_counter() - start) * 1000)
    return times


def floor_of(
    encoder: Any, name: str, kind: str, documents: list[str], queries: list[str], scratch: Path
) -> dict[str, Any]:
    model: OnnxModel | None = encoder._onnx_model()
    if model is None or not model.spec.get("int8"):
        raise SystemExit("the default encoders are not ONNX int8 here")
    fp32 = exported_model(name, kind=kind, int8=False)
    if fp32 is None:
        raise SystemExit(f"no fp32 export for {name}")
    shapes = weight_shapes(fp32 / MODEL_FILE)
    chain = scratch / f"{kind}.onnx"
    products_graph(shapes, chain, max_over_tokens=kind == "sparse")
    document_chain = _session(chain, threads=_cores(), spinning=True)
    query_chain = _session(chain, threads=1, spinning=False)
    width = shapes[0][0]

    def lengths(texts: list[str]) -> list[int]:
        return [len(model.tokenizer.encode(t).ids) for t in texts]

    document_lengths, query_lengths = lengths(documents), lengths(queries)
    model.encode_documents(documents[:8], batch_size=1)  # the document session, warm
    rows: dict[str, list[float]] = {
        k: [] for k in ("model docs", "chain docs", "model q", "chain q")
    }

    def alternate(texts: list[str], counts: list[int], model_call: Any, chain: Any) -> Any:
        """Per block of texts, the full model on each, then the chain on each."""
        model_ms: list[float] = []
        chain_ms: list[float] = []
        for start in range(0, len(texts), BLOCK):
            block = range(start, min(start + BLOCK, len(texts)))
            for i in block:
                began = time.perf_counter()
                model_call(texts[i])
                model_ms.append((time.perf_counter() - began) * 1000)
            chain_ms.extend(
                time_ms(lambda x: chain.run(None, {"x": x}), [counts[i] for i in block], width)
            )
        return model_ms, chain_ms

    for _ in range(ROUNDS):
        model_ms, chain_ms = alternate(
            documents,
            document_lengths,
            lambda text: model.encode_documents([text], batch_size=1),
            document_chain,
        )
        rows["model docs"].append(1000 * len(documents) / sum(model_ms))
        rows["chain docs"].append(1000 * len(documents) / sum(chain_ms))
        model_ms, chain_ms = alternate(queries, query_lengths, model.encode_query, query_chain)
        rows["model q"].append(statistics.median(model_ms))
        rows["chain q"].append(statistics.median(chain_ms))
    macs = sum(a * b for a, b in shapes)
    return {
        "model": name,
        "products": len(shapes),
        "weight_macs_per_token": macs,
        "document_tokens_mean": round(statistics.mean(document_lengths), 1),
        "query_tokens_median": statistics.median(query_lengths),
        "docs_per_s": {
            "model": _rounded(rows["model docs"]),
            "products": _rounded(rows["chain docs"]),
        },
        "query_ms_p50": {
            "model": _rounded(rows["model q"], 3),
            "products": _rounded(rows["chain q"], 3),
        },
    }


def _rounded(values: list[float], digits: int = 1) -> list[float]:
    return [round(v, digits) for v in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    documents = [d.page_content for d in list(beir_corpus(args.data))[: args.docs]]
    judged = beir_qrels(args.data, "test")
    queries = [text for qid, text in beir_queries(args.data).items() if qid in judged]
    report: dict[str, Any] = {
        "rounds": ROUNDS,
        "documents": len(documents),
        "queries": len(queries),
    }
    with tempfile.TemporaryDirectory(prefix="floor-") as scratch:
        for kind, name, encoder in (
            ("dense", DEFAULT_DENSE_MODEL, SentenceTransformerEncoder(DEFAULT_DENSE_MODEL)),
            ("sparse", DEFAULT_SPARSE_MODEL, SpladeEncoder(DEFAULT_SPARSE_MODEL)),
        ):
            report[kind] = floor_of(encoder, name, kind, documents, queries, Path(scratch))
            print(json.dumps(report[kind], indent=2), flush=True)
    best = {k: max(report[k]["docs_per_s"]["products"]) for k in ("dense", "sparse")}
    report["both_passes_products_docs_per_s"] = round(
        1 / (1 / best["dense"] + 1 / best["sparse"]), 1
    )
    report.update(
        dataset=args.data.resolve().name,
        load_average=os.getloadavg(),
        command=" ".join(["python", "benchmarks/floor.py", *sys.argv[1:]]),
        machine=machine_info(),
    )
    both = report["both_passes_products_docs_per_s"]
    print(f"both passes, products alone, best round: {both} docs/s")
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
