"""Put the benchmark results into the documentation pages (docs/), between their markers.

    python benchmarks/update_readme.py           # rewrite the blocks whose JSON exists
    python benchmarks/update_readme.py --check   # exit 1 if a page is out of date

Blocks, each from a JSON file under ``benchmarks/results/`` written by a command, each in
one page of ``docs/`` (:data:`BLOCKS`):

* ``scifact`` (``quality.md``): ``scifact_eval.json``, from ``hybrid-retriever eval ... --json``;
* ``peers`` (``peers.md``): ``peers.json``, from ``benchmarks/peers.py``;
* ``scale`` (``speed.md``): ``scale.json``, from ``benchmarks/scale.py``;
* ``encoding`` (``speed.md``): ``encoding.json``, from ``benchmarks/encoding.py``;
* ``query_encoding`` (``speed.md``): ``query_encoding.json``, from ``benchmarks/query_encoding.py``;
* ``query_profile`` (``speed.md``): ``query_profile.json``, from ``benchmarks/query_profile.py``;
* ``query_profile_int8`` (``speed.md``): ``query_profile_int8.json``, the same script, int8
  over rounds;
* ``floor`` (``speed.md``): ``floor.json``, from ``benchmarks/floor.py``;
* ``precision`` (``speed.md``): ``precision_quality.json``, from
  ``benchmarks/precision_quality.py``;
* ``backend_quality`` (``speed.md``): ``backend_quality.json``, from
  ``benchmarks/backend_quality.py``;
* ``fusion`` (``fusion.md``): ``fusion_study.md`` as written by ``benchmarks/fusion_study.py``.

Everything between a marker and its ``<!-- /results:NAME -->`` is replaced; the rest
of the page is untouched. (The name is historical: the blocks lived in README.md before
the documentation moved to docs/.) Standard library only, so it runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

METRICS = (("ndcg@10", "nDCG@10"), ("recall@100", "Recall@100"), ("mrr@10", "MRR@10"))


def _table(header: Sequence[str], align: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _machine_line(report: Mapping[str, Any]) -> str:
    machine = report.get("machine", {})
    return (
        f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
        f"torch {machine.get('torch', '?')}; `{report.get('command', '?')}`"
    )


def scifact_block(report: Mapping[str, Any]) -> str:
    """One row per run of ``hybrid-retriever eval``: quality per fusion method."""
    rows = [
        [name, *(f"{values[key]:.3f}" for key, _ in METRICS)]
        for name, values in report["runs"].items()
    ]
    table = _table(["run", *(label for _, label in METRICS)], ["---", "---:", "---:", "---:"], rows)
    return (
        f"{table}\n\n{report['num_docs']:,} documents, {report['num_queries']} queries; "
        f"indexing {report['index_seconds']:.0f} s, query p50 {report['query_ms_p50']:.0f} ms "
        f"(encoding included); {_machine_line(report)}"
    )


def scale_block(report: Mapping[str, Any]) -> str:
    """Search latency and ingestion rate per engine and size (benchmarks/scale.py)."""
    rows = [
        [
            r["engine"],
            f"{r['points']:,}",
            f"{r['search_ms_p50']:.1f}",
            f"{r['search_ms_p95']:.1f}",
            f"{r['ingest_points_per_s']:,.0f}",
            str(r["queries"]),
        ]
        for r in report["results"]
    ]
    table = _table(
        ["engine", "points", "search p50 (ms)", "search p95 (ms)", "ingest (points/s)", "queries"],
        ["---", *["---:"] * 5],
        rows,
    )
    commands = dict.fromkeys(r.get("command") or report.get("command") for r in report["results"])
    machine = report.get("machine", {})
    return f"{table}\n\n{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; " + "; ".join(
        f"`{c}`" for c in commands
    )


def encoding_block(report: Mapping[str, Any]) -> str:
    """Document-encoding rate and peak memory per path (benchmarks/encoding.py)."""
    best: dict[str, dict[str, Any]] = {}
    for run in report["runs"]:
        kept = best.get(run["path"])
        if kept is None or run["docs_per_s"] > kept["docs_per_s"]:
            best[run["path"]] = run
    rows = [
        [path, f"{run['docs_per_s']:.1f}", f"{run['peak_rss_mb']:,.0f}"]
        for path, run in best.items()
    ]
    table = _table(["path", "docs/s (best run)", "peak RSS (MB)"], ["---", "---:", "---:"], rows)
    text = (
        f"{table}\n\n{report['num_docs']:,} SciFact documents per path, each path in its own "
        f"process; {_machine_line(report)}"
    )
    end_to_end = report.get("end_to_end")
    if end_to_end:
        systems = end_to_end["systems"]
        e2e = _table(
            ["system", "ingest (docs/s)", "peak RSS (MB)", "invoke p50 (ms)", "invoke p95 (ms)"],
            ["---", *["---:"] * 4],
            [
                [
                    row["label"],
                    f"{row['ingest_docs_per_s']:.1f}",
                    f"{row['peak_rss_mb']:,.0f}",
                    f"{row['query_ms_p50']:.1f}",
                    f"{row['query_ms_p95']:.1f}",
                ]
                for row in systems.values()
            ],
        )
        text += (
            f"\n\nEnd to end in the same run, all {end_to_end['num_docs']:,} documents "
            f"(ingestion through each system's API, then `invoke` per test query):\n\n{e2e}"
        )
    return text


def query_encoding_block(report: Mapping[str, Any]) -> str:
    """Median query-encoding latency per path, one column per run (query_encoding.py)."""
    per_run = report["median_ms_per_run"]
    runs = len(next(iter(per_run.values())))
    rows = [[name, *(f"{ms:.1f}" for ms in values)] for name, values in per_run.items()]
    table = _table(
        ["path", *(f"run {i + 1} (ms)" for i in range(runs))], ["---", *["---:"] * runs], rows
    )
    return (
        f"{table}\n\nMedian over {report['queries']} SciFact queries per run, "
        f"{report['torch_threads']} torch threads; {_machine_line(report)}"
    )


def query_profile_block(report: Mapping[str, Any]) -> str:
    """One column per backend: each step of a query, p50 / p95 ms (query_profile.py)."""
    runs = report["runs"]
    steps = list(dict.fromkeys(step for run in runs for step in run["steps_ms"]))
    rows = []
    for step in steps:
        cells = [step]
        for run in runs:
            found = run["steps_ms"].get(step)
            cells.append(f"{found['p50']:.2f} / {found['p95']:.2f}" if found else "")
        rows.append(cells)
    rounds = max(run.get("round", 1) for run in runs)

    def column(run: Mapping[str, Any]) -> str:
        return run["backend"] + (
            f", round {run['round']} ({run['finished']})" if rounds > 1 else ""
        )

    table = _table(
        ["step (ms, p50 / p95)", *(column(run) for run in runs)],
        ["---", *["---:"] * len(runs)],
        rows,
    )
    load = ", ".join(f"{value:.2f}" for value in report["load_average"])
    return (
        f"{table}\n\n{runs[0]['queries']} {report['dataset']} test queries, one at a time, "
        f"query cache off, k={runs[0]['k']}; load average at the end {load}; "
        f"{_machine_line(report)}"
    )


def floor_block(report: Mapping[str, Any]) -> str:
    """Each encoder pass against its int8 products alone, per round (floor.py)."""
    rows = []
    for kind in ("dense", "sparse"):
        run = report[kind]
        docs, queries = run["docs_per_s"], run["query_ms_p50"]
        rows.append(
            [
                f"{run['model']} ({run['products']} products)",
                " / ".join(f"{v:.1f}" for v in docs["model"]),
                " / ".join(f"{v:.1f}" for v in docs["products"]),
                " / ".join(f"{v:.2f}" for v in queries["model"]),
                " / ".join(f"{v:.2f}" for v in queries["products"]),
            ]
        )
    table = _table(
        [
            "encoder",
            "documents/s: model",
            "products alone",
            "query p50 ms: model",
            "products alone",
        ],
        ["---", "---:", "---:", "---:", "---:"],
        rows,
    )
    return (
        f"{table}\n\nOne figure per round; {report['documents']} {report['dataset']} documents "
        f"(one per run, all cores), {report['queries']} test queries (one per run, one "
        f"thread). Both passes' products alone, best round: "
        f"{report['both_passes_products_docs_per_s']} documents/s; {_machine_line(report)}"
    )


def precision_block(report: Mapping[str, Any]) -> str:
    """nDCG@10 in fp32 and bf16, and top-10 overlap (benchmarks/precision_quality.py)."""
    rows = [
        [
            name,
            f"{values['fp32']:.4f}",
            f"{values['bf16']:.4f}",
            f"{values['bf16_minus_fp32']:+.4f}",
            f"{report['top10_overlap'][name]:.3f}",
        ]
        for name, values in report["ndcg@10"].items()
    ]
    table = _table(
        ["run", "nDCG@10 fp32", "nDCG@10 bf16", "difference", "top-10 overlap"],
        ["---", *["---:"] * 4],
        rows,
    )
    return f"{table}\n\n{report['num_queries']} test queries; {_machine_line(report)}"


def peers_table(report: Mapping[str, Any]) -> str:
    """One row per system of benchmarks/peers.py: quality, ingestion, latency, memory."""
    rows = [
        [
            values["label"],
            *(f"{values[key]:.3f}" for key, _ in METRICS),
            f"{values['ingest_docs_per_s']:.1f}",
            f"{values['query_ms_p50']:.0f}",
            f"{values['query_ms_p95']:.0f}",
            f"{values['peak_rss_mb']:.0f}",
        ]
        for values in report["systems"].values()
    ]
    return _table(
        [
            "system",
            *(label for _, label in METRICS),
            "ingest (docs/s)",
            "query p50 (ms)",
            "query p95 (ms)",
            "peak RSS (MB)",
        ],
        ["---", *["---:"] * 7],
        rows,
    )


def peers_block(report: Mapping[str, Any]) -> str:
    """The table and one line saying what it was measured on."""
    machine = report.get("machine", {})
    subset = (
        " (a subset: --limit-docs / --limit-queries)"
        if report.get("limit_docs") or report.get("limit_queries")
        else ""
    )
    return (
        f"{peers_table(report)}\n\n"
        f"{report['num_docs']:,} documents, {report['num_queries']} queries{subset}; "
        f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; "
        f"`{report.get('command', 'python benchmarks/peers.py')}`"
    )


def fusion_block(report: Mapping[str, Any]) -> str:
    """The fusion study's own markdown table, which sits next to its JSON."""
    del report  # the study renders its table itself; keep one renderer
    return (ROOT / "benchmarks" / "results" / "fusion_study.md").read_text(encoding="utf-8").strip()


def backend_quality_block(report: Mapping[str, Any]) -> str:
    """Per corpus: nDCG@10 per backend row (backend_quality.py), and the last minus the first."""
    corpora = report["corpora"]
    names = list(next(iter(corpora.values())))
    first, last = names[0], names[-1]

    def cell(values: Mapping[str, float]) -> str:
        return f"{values['hybrid']:.4f} ({values['dense']:.4f}, {values['sparse']:.4f})"

    rows = [
        [name, *(cell(by[n]) for n in names), f"{by[last]['hybrid'] - by[first]['hybrid']:+.4f}"]
        for name, by in corpora.items()
    ]
    means = []
    for n in names:
        per_corpus = [by[n] for by in corpora.values()]
        means.append({k: sum(v[k] for v in per_corpus) / len(per_corpus) for k in per_corpus[0]})
    change = means[-1]["hybrid"] - means[0]["hybrid"]
    rows.append(["mean", *(cell(m) for m in means), f"{change:+.4f}"])
    table = _table(
        [
            "corpus",
            *(f"{n}: hybrid (dense, sparse)" for n in names),
            f"hybrid, {last} minus {first}",
        ],
        ["---", *["---:"] * (len(names) + 1)],
        rows,
    )
    return f"{table}\n\nnDCG@10, test splits, {report['search']}; {_machine_line(report)}"


BLOCKS: dict[str, tuple[str, str, Callable[[Mapping[str, Any]], str]]] = {
    "scifact": ("quality.md", "scifact_eval.json", scifact_block),
    "peers": ("peers.md", "peers.json", peers_block),
    "scale": ("speed.md", "scale.json", scale_block),
    "encoding": ("speed.md", "encoding.json", encoding_block),
    "query_encoding": ("speed.md", "query_encoding.json", query_encoding_block),
    "query_profile": ("speed.md", "query_profile.json", query_profile_block),
    "query_profile_int8": ("speed.md", "query_profile_int8.json", query_profile_block),
    "floor": ("speed.md", "floor.json", floor_block),
    "precision": ("speed.md", "precision_quality.json", precision_block),
    "fusion": ("fusion.md", "fusion_study.json", fusion_block),
    "backend_quality": ("speed.md", "backend_quality.json", backend_quality_block),
}
"""Block name: (the page under docs/ that holds it, its JSON under results/, its renderer)."""


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the part between the ``name`` markers replaced by ``body``."""
    pattern = re.compile(
        rf"(<!-- results:{re.escape(name)} -->\n).*?(\n?<!-- /results:{re.escape(name)} -->)",
        re.DOTALL,
    )
    if not pattern.search(text):
        raise KeyError(name)
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2).lstrip("\n"), text, count=1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=Path, default=ROOT / "docs", help="the pages' folder")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--check", action="store_true", help="only report whether it is stale")
    args = parser.parse_args(argv)

    originals: dict[Path, str] = {}
    texts: dict[Path, str] = {}
    for name, (page_name, file_name, render) in BLOCKS.items():
        page = args.docs / page_name
        if page not in texts:
            originals[page] = texts[page] = page.read_text(encoding="utf-8")
        source = args.results / file_name
        if not source.is_file():
            print(f"skip {name}: no {source}", file=sys.stderr)
            continue
        try:
            texts[page] = replace_block(texts[page], name, render(json.loads(source.read_text())))
        except KeyError:
            print(
                f"skip {name}: {page} has no '<!-- results:{name} -->' ... "
                f"'<!-- /results:{name} -->' markers; add them where the table belongs.",
                file=sys.stderr,
            )
    stale = [page for page in texts if texts[page] != originals[page]]
    if args.check:
        for page in texts:
            print(f"{page} is {'out of date' if page in stale else 'up to date'}")
        return 1 if stale else 0
    for page in stale:
        page.write_text(texts[page], encoding="utf-8")
        print(f"updated {page}")
    if not stale:
        print("every page already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
