#!/usr/bin/env bash
# Lint, type-check and run the test suite (real models, real Qdrant, no network).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
# shellcheck disable=SC1091
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
ruff check .
ruff format --check .
mypy
# The documentation site, with strict link, anchor and reference checks (into site/).
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet
python -m pytest -q "$@"
