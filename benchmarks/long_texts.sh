#!/bin/bash
# Peak RSS of `index` and `eval` on long texts, and what chunking does to quality.
#
#   benchmarks/long_texts.sh ../shared/data/scifact [WORK_DIR] [-- long_texts.py options]
#
# Builds the long-text dataset (benchmarks/long_texts.py: SciFact documents concatenated
# to 2,000+ words, queries of 200 words) in WORK_DIR (default /tmp/long_texts), and the
# same corpus with SciFact's own (short) queries, then runs each step under
# /usr/bin/time -v:
#   eval                eval, whole documents (BEIR's way: encoders read each one's head)
#   eval_chunked        eval --chunking (a document ranks where its best chunk does)
#   index               index corpus.jsonl (JSON lines: chunked by default)
#   index_whole         index corpus.jsonl --no-chunking
#   eval_short          eval with the short queries, on the collection `eval` built
#   eval_chunked_short  eval --chunking with the short queries, on eval_chunked's collection
#   group_by            (not in the default steps; after `index`) both query sets through
#                       invoke with and without group_by on index's collection
#                       (benchmarks/long_texts_group_by.py; writes WORK_DIR/group_by.json)
# and prints wall time, peak RSS and nDCG@10 of each. The four first start from an empty
# collection (WORK_DIR/qdrant_STEP). STEPS="eval index_whole" runs only those; TREE=DIR
# runs another checkout's hybrid_retriever (e.g. an older commit's, from
# `git archive COMMIT hybrid_retriever | tar -x -C DIR`). The dataset is rebuilt only
# when its options change. The summary also goes to WORK_DIR/summary.json.
set -euo pipefail
scifact=$(realpath "$1")
work=$(realpath -m "${2:-/tmp/long_texts}")
shift $(($# >= 2 ? 2 : 1))
[[ "${1:-}" == "--" ]] && shift
repo=$(cd "$(dirname "$0")/.." && pwd)
tree=$(realpath "${TREE:-$repo}")
steps=${STEPS:-eval eval_chunked index index_whole eval_short eval_chunked_short}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
data="$work/long_scifact"
short="$work/long_scifact_short_queries"
stamp="$scifact $*"
if [[ ! -f "$work/dataset.txt" || "$(cat "$work/options.txt" 2>/dev/null)" != "$stamp" ]]; then
    rm -rf "$work"
    mkdir -p "$work"
    PYTHONPATH="$repo" python "$repo/benchmarks/long_texts.py" --data "$scifact" --out "$data" \
        "$@" >"$work/dataset.txt"
    # The same corpus (deterministic for the same options), each query as SciFact has it.
    PYTHONPATH="$repo" python "$repo/benchmarks/long_texts.py" --data "$scifact" --out "$short" \
        "$@" --query-words 0 >/dev/null
    echo "$stamp" >"$work/options.txt"
fi
cat "$work/dataset.txt"

step() {
    local name=$1 store=$2
    shift 2
    (cd "$tree" && PYTHONPATH="$tree" /usr/bin/time -v python -m hybrid_retriever.cli "$@" \
        --path "$work/qdrant_$store" --collection long --no-progress \
        >"$work/$name.out" 2>"$work/$name.err")
}
fresh() { rm -rf "$work/qdrant_$1"; }
for name in $steps; do
    case $name in
    eval) fresh eval && step eval eval eval "$data" --json "$work/eval.json" ;;
    eval_chunked)
        fresh eval_chunked
        step eval_chunked eval_chunked eval "$data" --chunking --json "$work/eval_chunked.json"
        ;;
    index) fresh index && step index index index "$data/corpus.jsonl" ;;
    index_whole) fresh index_whole && step index_whole index_whole index "$data/corpus.jsonl" --no-chunking ;;
    eval_short) step eval_short eval eval "$short" --json "$work/eval_short.json" ;;
    eval_chunked_short)
        step eval_chunked_short eval_chunked eval "$short" --chunking \
            --json "$work/eval_chunked_short.json"
        ;;
    group_by)
        (cd "$tree" && PYTHONPATH="$tree" /usr/bin/time -v python \
            "$repo/benchmarks/long_texts_group_by.py" --work "$work" --out "$work/group_by.json" \
            >"$work/group_by.out" 2>"$work/group_by.err")
        ;;
    *) echo "unknown step $name" >&2 && exit 2 ;;
    esac
done

python - "$work" $steps <<'PY'
import json, re, sys
from pathlib import Path

work, steps = Path(sys.argv[1]), sys.argv[2:]
summary = {"dataset": (work / "dataset.txt").read_text().strip(), "steps": {}}
for name in steps:
    err = (work / f"{name}.err").read_text()
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", err).group(1)
    row = {"peak_rss_gb": kb / 1e6, "wall": wall}
    report = work / f"{name}.json"
    if report.is_file() and name == "group_by":
        row.update(json.loads(report.read_text())["queries"])
    elif report.is_file():
        r = json.loads(report.read_text())
        row["ndcg@10"] = {run: round(v["ndcg@10"], 4) for run, v in r["runs"].items()}
        row["recall@100"] = {run: round(v["recall@100"], 4) for run, v in r["runs"].items()}
        row["passages"] = r.get("passages", r["num_docs"])
    else:
        row["output"] = (work / f"{name}.out").read_text().strip().splitlines()[-1]
    summary["steps"][name] = row
    extra = "; ".join(f"{k} {v}" for k, v in row.items() if k not in ("peak_rss_gb", "wall"))
    print(f"{name}: peak RSS {row['peak_rss_gb']:.2f} GB, wall {wall}; {extra}")
(work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
PY
