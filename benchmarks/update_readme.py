"""Put the benchmark results into README.md, between their markers.

    python benchmarks/update_readme.py           # rewrite the blocks whose JSON exists
    python benchmarks/update_readme.py --check   # exit 1 if README.md is out of date

Blocks: ``<!-- results:scifact -->`` from ``benchmarks/results/scifact_quality.json``
(``benchmarks/scifact_quality.py``) and ``<!-- results:peers -->`` from
``benchmarks/results/peers.json`` (``benchmarks/peers.py``). Everything between a
marker and its ``<!-- /results:NAME -->`` is replaced; the rest of the README is
untouched. Standard library only, so it runs anywhere.
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


def scifact_table(report: Mapping[str, Any]) -> str:
    """One row per run of benchmarks/scifact_quality.py: quality and query latency."""
    rows = [
        [
            name,
            *(f"{values[key]:.3f}" for key, _ in METRICS),
            f"{values['query_ms_p50']:.0f}" if "query_ms_p50" in values else "",
        ]
        for name, values in report["runs"].items()
    ]
    return _table(
        ["run", *(label for _, label in METRICS), "query p50 (ms)"],
        ["---", "---:", "---:", "---:", "---:"],
        rows,
    )


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


BLOCKS: dict[str, tuple[str, Callable[[Mapping[str, Any]], str]]] = {
    "scifact": ("scifact_quality.json", scifact_table),
    "peers": ("peers.json", peers_block),
}


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
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--check", action="store_true", help="only report whether it is stale")
    args = parser.parse_args(argv)

    original = args.readme.read_text(encoding="utf-8")
    text = original
    for name, (file_name, render) in BLOCKS.items():
        source = args.results / file_name
        if not source.is_file():
            print(f"skip {name}: no {source}", file=sys.stderr)
            continue
        try:
            text = replace_block(text, name, render(json.loads(source.read_text())))
        except KeyError:
            print(
                f"skip {name}: {args.readme} has no '<!-- results:{name} -->' ... "
                f"'<!-- /results:{name} -->' markers; add them where the table belongs.",
                file=sys.stderr,
            )
    if args.check:
        stale = text != original
        print(f"{args.readme} is {'out of date' if stale else 'up to date'}")
        return 1 if stale else 0
    if text != original:
        args.readme.write_text(text, encoding="utf-8")
        print(f"updated {args.readme}")
    else:
        print(f"{args.readme} already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
