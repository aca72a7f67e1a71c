#!/usr/bin/env bash
# Set up from nothing if needed, then lint and run the whole test suite (CPU, < 15 min).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
bash scripts/setup_verl_env.sh  # .venv-verl for tests/test_integration_verl.py
# tests/test_report.py opens the report page in headless Chromium (Debian's package)
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/ruff check src tests scripts benchmarks
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
