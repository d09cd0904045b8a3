#!/bin/bash
# The query phase of `hybrid-retriever eval` before and after "one search per query",
# on one index, in one session: this tree's eval (indexes, then reuses), the eval of an
# older commit (default f1089e2, where every run searched every query), this tree again.
#
#   benchmarks/eval_one_search.sh ../shared/data/scifact [OLD_COMMIT] [WORK_DIR]
#
# Prints the query-phase seconds of each (old: the time spent in run_retriever; new:
# search_seconds + latency_seconds of the report) and peak RSS; the JSON reports land
# in WORK_DIR for comparing metrics. This tree runs with --no-bm25, the two branches the
# old commit had, so that the same runs are compared (those both name).
set -euo pipefail
dataset=$(realpath "$1"); old=${2:-f1089e2}; work=$(realpath -m "${3:-/tmp/eval_one_search}")
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$work/old"
git -C "$repo" archive "$old" hybrid_retriever | tar -x -C "$work/old"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
common=(eval "$dataset" --k 10 --path "$work/qdrant" --collection eval --no-progress)
new() {
    (cd "$repo" && PYTHONPATH="$repo" /usr/bin/time -v python -m hybrid_retriever.cli \
        "${common[@]}" --no-bm25 --json "$work/$1.json" >"$work/$1.out" 2>"$work/$1.err")
}
new new1
(cd "$work/old" && PYTHONPATH="$work/old" /usr/bin/time -v python -c "
import sys, time
import hybrid_retriever.cli.evaluate as e
original, spent = e.run_retriever, [0.0]
def timed(*a, **k):
    t = time.perf_counter(); r = original(*a, **k); spent[0] += time.perf_counter() - t; return r
e.run_retriever = timed
from hybrid_retriever.cli import main
code = main(sys.argv[1:])
print(f'query phase: {spent[0]:.1f} s')
sys.exit(code)
" "${common[@]}" --json "$work/old.json" >"$work/old.out" 2>"$work/old.err")
new new2
python - "$work" <<'PY'
import json, re, sys
from pathlib import Path
work = Path(sys.argv[1])
def rss(name):
    kb = re.search(r"Maximum resident set size \(kbytes\): (\d+)", (work / f"{name}.err").read_text())
    return int(kb.group(1)) / 1e6 if kb else float("nan")
old = json.loads((work / "old.json").read_text())
old_s = float(re.search(r"query phase: ([\d.]+) s", (work / "old.out").read_text()).group(1))
print(f"old: query phase {old_s:.1f} s, peak RSS {rss('old'):.2f} GB")
for name in ("new1", "new2"):
    r = json.loads((work / f"{name}.json").read_text())
    s = r["search_seconds"] + r["latency_seconds"]
    both = [n for n in old["runs"] if n in r["runs"]]
    diff = max(abs(r["runs"][n][m] - old["runs"][n][m]) for n in both for m in old["metrics"])
    print(f"{name}: query phase {s:.1f} s ({r['search_seconds']:.1f} s one search per query, "
          f"{r['latency_seconds']:.1f} s timing {r['latency_queries']} queries per run), "
          f"{s / old_s:.2f} of old; largest metric difference from old {diff:.1e}; "
          f"peak RSS {rss(name):.2f} GB")
PY
