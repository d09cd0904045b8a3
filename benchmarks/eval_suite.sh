#!/bin/bash
# `hybrid-retriever eval` on every corpus of a BEIR suite, each under /usr/bin/time -v.
#
#   benchmarks/eval_suite.sh ../shared/data [WORK_DIR] [-- eval options]
#
# For each corpus folder NAME (one that has qrels/), from an empty collection in
# WORK_DIR/NAME (default /tmp/eval_suite): `hybrid-retriever eval SUITE/NAME --k 10
# --json benchmarks/results/eval_NAME.json --path WORK_DIR/NAME --collection NAME
# --no-progress`, then prints one line per corpus: nDCG@10 of each run, wall time and
# peak RSS (also in WORK_DIR/summary.json). ONLY="cisi npl" runs only those (lower-case
# folder names). The runs are those of eval's branches: dense, sparse and bm25 alone, the
# default (convex) and the other fusions over all three; `-- --no-bm25` evaluates the two
# original branches only (into the same eval_NAME.json files). Not part of CI.
set -euo pipefail
suite=$(realpath "$1")
work=$(realpath -m "${2:-/tmp/eval_suite}")
shift $(($# >= 2 ? 2 : 1))
[[ "${1:-}" == "--" ]] && shift
repo=$(cd "$(dirname "$0")/.." && pwd)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$work"
for folder in "$suite"/*/; do
    [[ -d "$folder/qrels" ]] || continue
    name=$(basename "$folder" | tr '[:upper:]' '[:lower:]')
    [[ -z "${ONLY:-}" || " $ONLY " == *" $name "* ]] || continue
    rm -rf "${work:?}/$name"
    /usr/bin/time -v -o "$work/$name.time" hybrid-retriever eval "$folder" --k 10 \
        --json "$repo/benchmarks/results/eval_$name.json" --path "$work/$name" \
        --collection "$name" --no-progress "$@" >"$work/$name.log" 2>&1
done
python - "$work" "$repo/benchmarks/results" <<'PY'
import json, re, sys
from pathlib import Path
work, results = Path(sys.argv[1]), Path(sys.argv[2])
summary = {}
for timing in sorted(work.glob("*.time")):
    name = timing.stem
    text = timing.read_text()
    wall = re.search(r"Elapsed \(wall clock\) time .*: (\S+)", text).group(1)
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    report = json.loads((results / f"eval_{name}.json").read_text())
    runs = {run: values["ndcg@10"] for run, values in report["runs"].items()}
    summary[name] = {"wall": wall, "peak_rss_gb": round(rss_kb / 1024**2, 2), "ndcg@10": runs}
    print(name, wall, f"{rss_kb / 1024**2:.2f} GB", {k: round(v, 4) for k, v in runs.items()})
(work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
PY
