#!/usr/bin/env bash
# Create .venv once and install the package with its model and test extras.
# Re-running is cheap: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate

stamp=.venv/.hybrid-retriever-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    python -m pip install --quiet --upgrade pip
    # The CPU build of torch first, so that no dependency range pulls a multi-GB CUDA build.
    python -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
    python -m pip install --quiet -e ".[dev]"
    echo "$wanted" > "$stamp"
fi
