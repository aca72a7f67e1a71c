#!/usr/bin/env bash
# The test environment's second venv: verl 0.9.1 pins transformers < 5.11, so it cannot share
# .venv; tests/test_integration_verl.py runs its verl tests in .venv-verl (fgrpo itself comes
# from src/ there). Called by scripts/test.sh only: the main job does not need verl.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
# Built once (~5 min), then reused until scripts/setup_verl_env.sh changes. cachetools, uvicorn and
# fastapi: imported by verl's trainer module but not declared by verl 0.9.1.
VERL_VENV=".venv-verl"
verl_stamp="$VERL_VENV/.fgrpo-installed"
verl_want="$(sha256sum scripts/setup_verl_env.sh | cut -c1-16)"
if [ ! -f "$verl_stamp" ] || [ "$(cat "$verl_stamp")" != "$verl_want" ]; then
  [ -x "$VERL_VENV/bin/python" ] || "$PY" -m venv "$VERL_VENV"
  "$VERL_VENV/bin/python" -m pip install -q --disable-pip-version-check torch==2.13.0
  "$VERL_VENV/bin/python" -m pip install -q --disable-pip-version-check verl==0.9.1 pytest==9.2.0 \
    cachetools==8.0.2 uvicorn==0.54.0 fastapi==0.165.0
  echo "$verl_want" > "$verl_stamp"
fi
