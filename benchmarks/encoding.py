"""Document-encoding speed and peak memory: sentence-transformers vs our encoders.

Encodes SciFact documents (``title + " " + text``) with each path in its own
subprocess, so that every peak RSS (``ru_maxrss``) belongs to one path alone:

* ``st-dense`` / ``st-splade``: plain ``encode_document`` of sentence-transformers;
* ``dense-fp32`` / ``dense-bf16``: ``SentenceTransformerEncoder`` on PyTorch (bf16 =
  autocast);
* ``splade-fp32`` / ``splade-bf16``: ``SpladeEncoder`` on PyTorch (chunked pooling;
  bf16 = bf16 screening with fp32 refinement);
* ``dense-onnx`` / ``splade-onnx``: the same encoders on ONNX Runtime, fp32;
  ``-onnx-int8``: int8 (the default where ``onnxruntime`` is installed).

Each path encodes the whole subsample in one call, after loading the model and a
warm-up call; load time is not counted. ``--runs`` repeats every path (CPU timings
on a shared machine are noisy). An ``accuracy`` subprocess compares our vectors
with ``encode_document`` on the first ``--accuracy-limit`` documents.

``--end-to-end`` then runs ``benchmarks/peers.py`` on the whole dataset in the same
run: ingestion through each system's own API (ours vs langchain-qdrant
``QdrantVectorStore.from_documents`` in HYBRID mode with the same two models, and
the BM25 ensemble), peak RSS while ingesting and querying, and ``invoke`` latency
p50/p95. Its table lands in ``peers.json`` / ``peers.md`` and, summarised, in
this report. Not part of CI.

    python benchmarks/encoding.py --data ../shared/data/scifact --limit 1000 --runs 2 --end-to-end
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PATHS = (
    "st-dense",
    "dense-fp32",
    "dense-bf16",
    "dense-onnx",
    "dense-onnx-int8",
    "st-splade",
    "splade-fp32",
    "splade-bf16",
    "splade-onnx",
    "splade-onnx-int8",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--limit", type=int, default=1000, help="documents encoded per path")
    parser.add_argument("--runs", type=int, default=2, help="subprocesses per path")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--accuracy-limit", type=int, default=200, help="0 skips the check")
    parser.add_argument(
        "--end-to-end", action="store_true", help="also run benchmarks/peers.py on all the data"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/encoding.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args)), flush=True)
        return

    from hybrid_retriever.encoders.precision import cpu_has_native_bf16
    from hybrid_retriever.machine import machine_info

    texts = load_texts(args.data, args.limit)
    report: dict[str, Any] = {
        "dataset": args.data.name,
        "num_docs": len(texts),
        "mean_chars": round(sum(map(len, texts)) / len(texts)),
        "batch_size": args.batch_size,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {**machine_info(), "native_bf16": cpu_has_native_bf16()},
        "runs": [],
    }
    for run in range(1, args.runs + 1):
        for path in args.paths:
            result = {"path": path, "run": run, "load_average_before": os.getloadavg()[0]}
            result |= worker(args, path)
            report["runs"].append(result)
            print(
                f"run {run} {path:12} {result['docs_per_s']:7.1f} docs/s  "
                f"peak RSS {result['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
    if args.accuracy_limit:
        report["accuracy"] = worker(args, "accuracy")
    if args.end_to_end:
        report["end_to_end"] = end_to_end(args.data, args.out.parent)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(markdown(report))
    print(f"\nwrote {args.out}")


def end_to_end(data: Path, out_dir: Path) -> dict[str, Any]:
    """Run benchmarks/peers.py on the whole dataset; keep its speed and memory columns."""
    peers = Path(__file__).resolve().parent / "peers.py"
    command = [sys.executable, str(peers), "--data", str(data), "--out-dir", str(out_dir)]
    subprocess.run(command, check=True)
    report = json.loads((out_dir / "peers.json").read_text())
    keys = ("label", "ingest_docs_per_s", "peak_rss_mb", "query_ms_p50", "query_ms_p95")
    return {
        "num_docs": report["num_docs"],
        "systems": {name: {k: row[k] for k in keys} for name, row in report["systems"].items()},
    }


def worker(args: argparse.Namespace, path: str) -> dict[str, Any]:
    """Run one path in a fresh interpreter and return what it measured."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        path,
        "--data",
        str(args.data),
        "--limit",
        str(args.limit),
        "--batch-size",
        str(args.batch_size),
        "--accuracy-limit",
        str(args.accuracy_limit),
    ]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{path} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    texts = load_texts(args.data, args.limit)
    if args.worker == "accuracy":
        return accuracy(texts[: args.accuracy_limit], args.batch_size)
    encode = make_encoder(args.worker, args.batch_size)
    encode(texts[:4])  # load the model and warm up
    rss_loaded = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    encode(texts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "docs_per_s": round(len(texts) / wall, 2),
        "docs_per_cpu_s": round(len(texts) / cpu, 2),
        "seconds": round(wall, 2),
        "peak_rss_mb": round(peak_rss_mb()),
        "rss_after_load_mb": round(rss_loaded),
        "torch_threads": torch.get_num_threads(),
    }


def make_encoder(path: str, batch_size: int) -> Any:
    from hybrid_retriever import SentenceTransformerEncoder, SpladeEncoder

    kind, _, precision = path.partition("-")
    if kind == "st":
        encoder: Any = SentenceTransformerEncoder() if precision == "dense" else SpladeEncoder()
        model = encoder.model

        def plain(texts: list[str]) -> Any:
            return model.encode_document(texts, batch_size=batch_size, show_progress_bar=False)

        return plain
    options: dict[str, Any] = {"batch_size": batch_size, "backend": "torch"}
    if precision.startswith("onnx"):
        options["backend"] = precision
    else:
        options["precision"] = precision
    if kind == "dense":
        return SentenceTransformerEncoder(**options).encode_documents
    return SpladeEncoder(**options).encode_documents


def accuracy(texts: list[str], batch_size: int) -> dict[str, Any]:
    """Max differences of our vectors from sentence-transformers' ``encode_document``."""
    import torch

    from hybrid_retriever import SentenceTransformerEncoder, SpladeEncoder
    from hybrid_retriever.encoders.splade import sparse_rows

    report: dict[str, Any] = {"num_docs": len(texts)}
    splade = SpladeEncoder(batch_size=batch_size, precision="fp32", backend="torch")
    matrix = splade.model.encode_document(
        texts, batch_size=batch_size, convert_to_sparse_tensor=True, show_progress_bar=False
    )
    reference = sparse_rows(matrix, len(texts))
    for precision in ("fp32", "bf16"):
        ours = SpladeEncoder(batch_size=batch_size, precision=precision, backend="torch")
        ours._model = splade._model
        report[f"splade-{precision}"] = sparse_differences(ours.encode_documents(texts), reference)
    for backend in ("onnx", "onnx-int8"):
        ours = SpladeEncoder(batch_size=batch_size, backend=backend)
        report[f"splade-{backend}"] = sparse_differences(ours.encode_documents(texts), reference)

    dense = SentenceTransformerEncoder(batch_size=batch_size, precision="fp32", backend="torch")
    dense_reference = torch.as_tensor(
        dense.model.encode_document(texts, batch_size=batch_size, show_progress_bar=False)
    )
    for precision in ("fp32", "bf16", "onnx", "onnx-int8"):
        if precision.startswith("onnx"):
            ours_dense = SentenceTransformerEncoder(batch_size=batch_size, backend=precision)
        else:
            ours_dense = SentenceTransformerEncoder(
                batch_size=batch_size, precision=precision, backend="torch"
            )
            ours_dense._model = dense._model
        vectors = torch.tensor(ours_dense.encode_documents(texts))
        difference = (vectors - dense_reference).norm(dim=1) / dense_reference.norm(dim=1)
        cosine = torch.nn.functional.cosine_similarity(vectors, dense_reference)
        report[f"dense-{precision}"] = {
            "max_relative_l2_difference": float(difference.max()),
            "max_absolute_element_difference": float((vectors - dense_reference).abs().max()),
            "min_cosine": float(cosine.min()),
        }
    return report


def sparse_differences(actual: list[Any], expected: list[Any]) -> dict[str, Any]:
    """Index-set differences and the largest relative weight difference.

    ``max_relative_difference_above_1e-2`` ignores weights below 0.01, where a ~1e-6
    absolute rounding difference is a large relative one.
    """
    worst, worst_large, worst_abs, index_differences, values = 0.0, 0.0, 0.0, 0, 0
    for ours, theirs in zip(actual, expected, strict=True):
        mine = dict(zip(ours.indices, ours.values, strict=True))
        ref = dict(zip(theirs.indices, theirs.values, strict=True))
        index_differences += len(mine.keys() ^ ref.keys())
        for index in mine.keys() | ref.keys():
            a, b = mine.get(index, 0.0), ref.get(index, 0.0)
            values += 1
            relative = abs(a - b) / abs(b) if b else float("inf") if a else 0.0
            worst, worst_abs = max(worst, relative), max(worst_abs, abs(a - b))
            if abs(b) >= 1e-2:
                worst_large = max(worst_large, relative)
    return {
        "values_compared": values,
        "index_set_differences": index_differences,
        "max_relative_difference": worst,
        "max_relative_difference_above_1e-2": worst_large,
        "max_absolute_difference": worst_abs,
    }


def load_texts(data: Path, limit: int) -> list[str]:
    texts = []
    with (data / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            texts.append(f"{record.get('title', '')} {record['text']}".strip())
            if len(texts) >= limit:
                break
    return texts


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def markdown(report: dict[str, Any]) -> str:
    runs = sorted({r["run"] for r in report["runs"]})
    header = ["path", *[f"docs/s run {r}" for r in runs], "docs/CPU-s (best)", "peak RSS MB (max)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for path in dict.fromkeys(r["path"] for r in report["runs"]):
        rows = [r for r in report["runs"] if r["path"] == path]
        cells = [path, *[f"{r['docs_per_s']:.1f}" for r in rows]]
        cells.append(f"{max(r['docs_per_cpu_s'] for r in rows):.1f}")
        cells.append(f"{max(r['peak_rss_mb'] for r in rows):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    machine = report["machine"]
    lines.append(
        f"\n{report['num_docs']} SciFact documents, batch size {report['batch_size']}; "
        f"{machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, "
        f"native bf16: {machine['native_bf16']}."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
