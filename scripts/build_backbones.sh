#!/usr/bin/env bash
# The per-seed id-tiny backbones of the seventh and eighth rounds (docs/results.md): for each
# seed k, SASRec seed k trained on train, early-stopped on valid (the compare's sasrec row of
# seed k: same seed, same data), then next-item pretraining of a 64-wide, 2-layer id-tiny
# from its item embeddings, with seed k. Finished steps are skipped, so it resumes.
#   bash scripts/build_backbones.sh 0 1 2 3 4        # ~5 min a seed on one core
# Environment: DATA (the prepared dataset folder, runs/main/data), OUT (runs/sasinit_ps).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/reproducible_env.sh
F="${FGRPO:-.venv/bin/fgrpo}"
DATA="${DATA:-runs/main/data}"; OUT="${OUT:-runs/sasinit_ps}"
for k in "$@"; do
  d="$OUT/seed$k"
  if [ ! -f "$d/sasrec_valid/scorer.pt" ]; then
    $F eval method=sasrec dataset="$DATA" split=valid seed="$k" torch_threads=1 output_dir="$d/sasrec_valid"
  fi
  if [ ! -f "$d/pretrain/model/config.json" ]; then
    $F pretrain-items --config configs/pretrain_idtiny_ml100k.yaml dataset="$DATA" hidden_size=64 num_layers=2 \
      num_heads=2 seed="$k" max_steps=4000 eval_every=250 item_embeddings_from="$d/sasrec_valid/scorer.pt" \
      output_dir="$d/pretrain" torch_threads=1
  fi
  echo "seed $k: $d/pretrain/model"
done
