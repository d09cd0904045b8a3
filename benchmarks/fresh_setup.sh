#!/usr/bin/env bash
# How long a fresh machine takes: clone this repo's HEAD into a new folder (so no .venv),
# with pip's cache off and an empty ONNX export cache (so both encoders are exported and
# quantised, as on a new machine), then time `bash scripts/demo.sh` to its first answer
# ("demo"; it also checks that the demo ran the default, int8 ONNX), or the test command's
# install step, `bash scripts/setup.sh dev`, without the suite ("test").
# Not part of CI. Usage: bash benchmarks/fresh_setup.sh demo|test [folder]
set -euo pipefail
what=${1:?usage: bash benchmarks/fresh_setup.sh demo|test [folder]}
folder=${2:-$(mktemp -d)/hybrid_retriever}
repo=$(cd "$(dirname "$0")/.." && pwd)
git clone -q "$repo" "$folder"
cd "$folder"
export PIP_NO_CACHE_DIR=1
HYBRID_RETRIEVER_ONNX_CACHE=$(mktemp -d)
export HYBRID_RETRIEVER_ONNX_CACHE
log=$(mktemp)  # the demo's output, checked for its backend
echo "fresh clone of $(git rev-parse --short HEAD) in $folder; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
elapsed() { echo "$(date +%s.%N) - $start" | bc; }
case "$what" in
    demo)
        bash scripts/demo.sh 2>&1 | while IFS= read -r line; do
            if [ -z "${answered:-}" ] && [[ $line == Q:* ]]; then
                answered=1
                printf 'first answer after %.0f s\n' "$(elapsed)"
            fi
            printf '%s\n' "$line"
        done | grep -v "is ignored: it is neither" | tee "$log"
        if grep -q "^Encoders: dense .* on onnx-int8, sparse .* on onnx-int8\.$" \
            "$log"; then
            echo "backend: int8 ONNX for both encoders"
        else
            echo "backend: NOT the default int8 ONNX (see the Encoders line above)" >&2
            exit 1
        fi
        ;;
    test)
        bash scripts/setup.sh dev
        ;;
    *)
        echo "unknown step '$what' (demo or test)" >&2
        exit 2
        ;;
esac
printf 'done after %.0f s; load average: %s\n' "$(elapsed)" "$(cut -d' ' -f1-3 /proc/loadavg)"
