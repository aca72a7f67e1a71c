#!/usr/bin/env bash
# The real-data pipeline (work in progress, issue 3): prepare MovieLens-100K -> SFT SmolLM2-135M-Instruct -> F-GRPO -> evaluate,
# on a 2-core CPU. Prints SFT-start vs after-F-GRPO metrics on the test split.
# Budget knobs (environment): SFT_STEPS, RL_STEPS, TEST_LIMIT.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
F=".venv/bin/fgrpo"
OUT=runs/main
SFT_STEPS="${SFT_STEPS:-20}"; RL_STEPS="${RL_STEPS:-10}"; TEST_LIMIT="${TEST_LIMIT:-50}"
start=$(date +%s)
$F prepare --config configs/prepare_ml100k.yaml output_dir=$OUT/data max_train_per_user=5
$F sft --config configs/sft_smollm2_ml100k.yaml output_dir=$OUT/sft dataset=$OUT/data max_steps=$SFT_STEPS
$F eval model=$OUT/sft/model dataset=$OUT/data output_dir=$OUT/eval_sft max_new_tokens=96 --limit $TEST_LIMIT
$F train --config configs/fgrpo_smollm2_ml100k.yaml output_dir=$OUT/fgrpo model=$OUT/sft/model dataset=$OUT/data max_steps=$RL_STEPS
$F eval model=$OUT/fgrpo/model dataset=$OUT/data output_dir=$OUT/eval_fgrpo max_new_tokens=96 --limit $TEST_LIMIT
$F eval method=popularity dataset=$OUT/data output_dir=$OUT/eval_popularity --limit $TEST_LIMIT
$F eval method=random dataset=$OUT/data output_dir=$OUT/eval_random --limit $TEST_LIMIT
echo
echo "ML-100K test split (first $TEST_LIMIT users), $(( ($(date +%s) - start) / 60 )) min wall-clock:"
.venv/bin/python scripts/compare_table.py "SFT (start)=$OUT/eval_sft" "F-GRPO=$OUT/eval_fgrpo" \
  "Popularity=$OUT/eval_popularity" "Random=$OUT/eval_random"
echo "outputs: $OUT/ (data/, sft/model, fgrpo/model, fgrpo/metrics.jsonl, eval_*/predictions.jsonl)"
