#!/usr/bin/env bash
# Set up from nothing if needed, then lint and run the whole test suite (CPU, < 15 min).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/ruff check src tests scripts benchmarks
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
