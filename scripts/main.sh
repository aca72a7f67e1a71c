#!/usr/bin/env bash
# The main job: MovieLens-100K -> next-item pretraining of the id-tiny Llama (one
# token per item) -> SFT on the slate+rank format -> F-GRPO -> test metrics, next to Random,
# Popularity, SASRec and GRU4Rec trained on the same split and scored on the same pools;
# on a 2-core CPU within 30 minutes from a fresh clone. Ends with one markdown table.
#
# Every slate writer decodes greedily under the format constraint (docs/id-tiny.md: this
# small model names out-of-pool items when decoding freely); the scorers rank the pool.
# The SmolLM2 text pipeline (an LLM reading titles) is scripts/main_llm.sh.
#
# Budget knobs (environment): PRETRAIN_STEPS, SFT_STEPS, RL_STEPS, TEST_LIMIT (null: all
# 943 test users), MAX_EXAMPLES (null: every example of each split; a small slice for the
# test suite), OUT (the output folder). docs/results.md has what the defaults give.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
source scripts/reproducible_env.sh  # the same bits on every x86-64 CPU of the machine kind (docs/reliability.md)
F=".venv/bin/fgrpo"
OUT="${OUT:-runs/main}"
PRETRAIN_STEPS="${PRETRAIN_STEPS:-3000}"; SFT_STEPS="${SFT_STEPS:-1500}"; RL_STEPS="${RL_STEPS:-400}"
TEST_LIMIT="${TEST_LIMIT:-null}"; MAX_EXAMPLES="${MAX_EXAMPLES:-null}"; SEQ_EXTRA="${SEQ_EXTRA:-}"
start=$(date +%s)
stage() { echo; echo "== [$(( $(date +%s) - start )) s] $*"; }
# each evaluation's own table goes to its log: the job prints one table, at the end
ev() { local name=$1; shift; $F eval dataset=$OUT/data split=test limit=$TEST_LIMIT batch_size=64 torch_threads=2 \
  output_dir=$OUT/eval_$name "$@" > $OUT/eval_$name.log; echo "  $name: $(grep -o '"NDCG@5": [0-9.]*' $OUT/eval_$name/metrics.json)"; }

stage "prepare MovieLens-100K (chronological leave-one-out, 20-item pools, every training position)"
$F prepare --config configs/prepare_ml100k.yaml output_dir=$OUT/data prompt_tokenizer=null max_examples=$MAX_EXAMPLES
rm -rf $OUT/pretrain $OUT/sft $OUT/fgrpo
stage "next-item pretraining of id-tiny: $PRETRAIN_STEPS steps"
$F pretrain-items --config configs/pretrain_idtiny_ml100k.yaml dataset=$OUT/data output_dir=$OUT/pretrain max_steps=$PRETRAIN_STEPS torch_threads=2
stage "SFT on the slate+rank format: $SFT_STEPS steps"
$F sft --config configs/sft_idtiny_ml100k.yaml model=$OUT/pretrain/model dataset=$OUT/data output_dir=$OUT/sft max_steps=$SFT_STEPS torch_threads=2
stage "F-GRPO: $RL_STEPS steps"
$F train --config configs/fgrpo_idtiny_ml100k.yaml model=$OUT/sft/model dataset=$OUT/data output_dir=$OUT/fgrpo max_steps=$RL_STEPS save_every=$RL_STEPS
stage "test: the slate writers (constrained greedy), then the scorers"
ev sft model=$OUT/sft/model constrained=true
ev fgrpo model=$OUT/fgrpo/model constrained=true
ev random method=random
ev popularity method=popularity
ev sasrec method=sasrec $SEQ_EXTRA      # early-stopped on valid NDCG@5, tuned defaults (docs/baselines.md)
ev gru4rec method=gru4rec $SEQ_EXTRA

stage "done"
echo "MovieLens-100K test split ($TEST_LIMIT users; null = all 943), $(( ($(date +%s) - start) / 60 )) min wall-clock:"
.venv/bin/python scripts/compare_table.py --keys NDCG@5,Hit@1,Hit@5,MRR,format/valid_rate \
  "Random=$OUT/eval_random" "Popularity=$OUT/eval_popularity" "SASRec=$OUT/eval_sasrec" "GRU4Rec=$OUT/eval_gru4rec" \
  "SFT=$OUT/eval_sft" "F-GRPO=$OUT/eval_fgrpo"
echo "outputs: $OUT/data, $OUT/{pretrain,sft,fgrpo}/model (HF folders), $OUT/fgrpo/metrics.jsonl, $OUT/eval_*/{metrics.json,predictions.jsonl}"
