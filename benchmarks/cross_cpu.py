"""Do the int8 encoders give the same vectors on another CPU family? Run here and there, compare.

Three steps:

* ``prepare DIR`` (here, with the package installed): the int8 exports of both default
  models as ``onnx_export`` makes them, the tokenizer, and 300 SciFact test queries and
  200 documents. With ``--embeddings-int8`` the embedding tables are quantised too (the
  matrix products stay exactly the shipped ones): all-MiniLM-L6-v2's fp32 table alone is
  47 MB, too large to carry to a machine that takes 64 MiB in all.
* ``encode DIR OUT`` (on each machine; needs only ``onnxruntime``, ``tokenizers`` and
  ``numpy``, not this package): queries one at a time on one thread, documents one at
  a time on 1, 2 and 4 threads, as the library runs them; writes ``vectors.npz`` and
  ``info.json`` (CPU model, its int8 instructions, ONNX Runtime's version).
* ``compare A B``: per set, how many vectors differ, and by how much.

    python benchmarks/cross_cpu.py prepare .devcheck --embeddings-int8 --data ../shared/data/scifact
    python benchmarks/cross_cpu.py encode .devcheck /tmp/here
    # on the other machine, same ONNX Runtime version:
    python3 benchmarks/cross_cpu.py encode .devcheck "$OUT"
    python benchmarks/cross_cpu.py compare /tmp/here/vectors.npz /path/to/there/vectors.npz

Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("dense", "sparse")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def prepare(folder: Path, data: Path, *, embeddings_int8: bool) -> None:
    from hybrid_retriever.encoders import onnx_export
    from hybrid_retriever.evaluation import beir_corpus, beir_qrels, beir_queries

    folder.mkdir(parents=True, exist_ok=True)
    models: list[tuple[onnx_export.Kind, str]] = [
        ("dense", "all-MiniLM-L6-v2"),
        ("sparse", "splade-tiny"),
    ]
    for kind, name in models:
        target = folder / kind
        target.mkdir(exist_ok=True)
        source = onnx_export.exported_model(name, kind=kind, int8=not embeddings_int8)
        if source is None:
            raise SystemExit(f"{name} cannot be exported to ONNX")
        shutil.copy(source / onnx_export.MODEL_FILE, target / onnx_export.MODEL_FILE)
        if embeddings_int8:  # the fp32 export, quantised as the shipped one, tables too
            onnx_export._quantize(target / onnx_export.MODEL_FILE, also=("Gather",))
        shutil.copy(source / onnx_export.SPEC_FILE, target / onnx_export.SPEC_FILE)
        shutil.copy(source / onnx_export.TOKENIZER_FILE, folder / onnx_export.TOKENIZER_FILE)
    judged = beir_qrels(data, "test")
    queries = [text for qid, text in beir_queries(data).items() if qid in judged][:300]
    documents = [d.page_content for d in list(beir_corpus(data))[:200]]
    texts = {"queries": queries, "documents": documents}
    (folder / "texts.json").write_text(json.dumps(texts), encoding="utf-8")


def _session(path: Path, threads: int) -> Any:
    """As ``encoders/onnx_model.py`` makes its sessions."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _feeds(encoding: Any, names: list[str]) -> dict[str, Any]:
    arrays = {
        "input_ids": np.array([encoding.ids], dtype=np.int64),
        "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
        "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
    }
    return {name: arrays[name] for name in names}


def encode(folder: Path, out: Path) -> None:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    texts = json.loads((folder / "texts.json").read_text(encoding="utf-8"))
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    vectors: dict[str, Any] = {}
    info: dict[str, Any] = {"onnxruntime": ort.__version__, "machine": platform.machine()}
    info.update(_cpu())
    for kind in KINDS:
        spec = json.loads((folder / kind / "spec.json").read_text(encoding="utf-8"))
        tokenizer.enable_truncation(int(spec["max_length"]))
        model = folder / kind / "model.onnx"
        session = _session(model, 1)
        names = [i.name for i in session.get_inputs()]
        rows, times = [], []
        for text in texts["queries"]:
            encoding = tokenizer.encode(spec["query_prompt"] + text)
            start = time.perf_counter()
            rows.append(session.run(None, _feeds(encoding, names))[0][0])
            times.append(time.perf_counter() - start)
        vectors[f"{kind}_queries"] = np.array(rows)
        info[f"{kind}_query_p50_ms"] = round(statistics.median(times) * 1000, 3)
        encodings = tokenizer.encode_batch(
            [spec["document_prompt"] + t for t in texts["documents"]]
        )
        for threads in (1, 2, 4):
            session = _session(model, threads)
            rows = [session.run(None, _feeds(e, names))[0][0] for e in encodings]
            vectors[f"{kind}_documents_{threads}_threads"] = np.array(rows)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "vectors.npz", **_packed(vectors))
    (out / "info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(info))


def _cpu() -> dict[str, Any]:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return {}
    model = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), ""
    )
    flags = set(
        next((line.split(":", 1)[1] for line in lines if line.startswith("flags")), "").split()
    )
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
    return {"cpu": model, "int8_instructions": [f for f in wanted if f in flags]}


def _packed(vectors: dict[str, Any]) -> dict[str, Any]:
    """SPLADE rows as (row, column) pairs and values: 30,522 wide, they are mostly zeros."""
    packed: dict[str, Any] = {}
    for name, matrix in vectors.items():
        if name.startswith("sparse"):
            rows, columns = np.nonzero(matrix)
            packed[f"{name}.where"] = np.stack([rows, columns]).astype(np.int32)
            packed[f"{name}.values"] = matrix[rows, columns]
            packed[f"{name}.shape"] = np.array(matrix.shape)
        else:
            packed[name] = matrix
    return packed


def _unpacked(archive: Any, name: str) -> Any:
    if f"{name}.shape" not in archive:
        return archive[name]
    matrix = np.zeros(tuple(archive[f"{name}.shape"]), dtype=np.float32)
    rows, columns = archive[f"{name}.where"]
    matrix[rows, columns] = archive[f"{name}.values"]
    return matrix


def compare(first: Path, second: Path) -> None:
    a, b = np.load(first), np.load(second)
    names = sorted({n.split(".")[0] for n in a.files})
    for name in names:
        x, y = _unpacked(a, name), _unpacked(b, name)
        difference = np.abs(x - y)
        differing = int((difference.max(axis=1) > 0).sum())
        print(
            f"{name:28s} vectors differing {differing}/{len(x)}, "
            f"largest difference {difference.max():.3e} (largest value {np.abs(x).max():.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    step = steps.add_parser("prepare")
    step.add_argument("folder", type=Path)
    step.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    step.add_argument("--embeddings-int8", action="store_true")
    step = steps.add_parser("encode")
    step.add_argument("folder", type=Path)
    step.add_argument("out", type=Path)
    step = steps.add_parser("compare")
    step.add_argument("first", type=Path)
    step.add_argument("second", type=Path)
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.folder, args.data, embeddings_int8=args.embeddings_int8)
    elif args.step == "encode":
        encode(args.folder, args.out)
    else:
        compare(args.first, args.second)


if __name__ == "__main__":
    main()
