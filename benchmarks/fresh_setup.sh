#!/usr/bin/env bash
# How long a fresh machine takes: clone this repo's HEAD into a new folder (so no .venv),
# with pip's cache off, then time `bash scripts/demo.sh` to its first answer ("demo"), or
# the test command's install step, `bash scripts/setup.sh dev`, without the suite ("test").
# Not part of CI. Usage: bash benchmarks/fresh_setup.sh demo|test [folder]
set -euo pipefail
what=${1:?usage: bash benchmarks/fresh_setup.sh demo|test [folder]}
folder=${2:-$(mktemp -d)/hybrid_retriever}
repo=$(cd "$(dirname "$0")/.." && pwd)
git clone -q "$repo" "$folder"
cd "$folder"
export PIP_NO_CACHE_DIR=1
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
        done | grep -v "is ignored: it is neither"
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
