#!/usr/bin/env bash
# The toy job (the quickest end-to-end check; the main job is scripts/main.sh): a tiny Llama
# learns the output format in a short supervised warm-up, F-GRPO trains it, and greedy
# decoding is scored on held-out toy pools. A few minutes on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
source scripts/reproducible_env.sh  # the same bits on every x86-64 CPU of the machine kind (docs/reliability.md)
OUT=runs/toy
rm -rf "$OUT"
.venv/bin/fgrpo train --config configs/toy.yaml output_dir=$OUT
.venv/bin/fgrpo eval model=$OUT/model dataset=toy output_dir=$OUT/eval max_new_tokens=24 --limit 200
.venv/bin/fgrpo eval method=random dataset=toy output_dir=$OUT/eval_random --limit 200
echo
echo "Toy test pools (200, unseen in training):"
.venv/bin/python scripts/compare_table.py "F-GRPO=$OUT/eval" "Random=$OUT/eval_random"
echo "outputs: $OUT/ (metrics.jsonl, tensorboard/, checkpoints/, model/, eval/predictions.jsonl)"
