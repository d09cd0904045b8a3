#!/usr/bin/env bash
# The main job: index the bundled demo corpus and answer a few queries.
# Extra arguments go to `python -m hybrid_retriever.demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh models
# shellcheck disable=SC1091
. .venv/bin/activate
exec python -m hybrid_retriever.demo "$@"
