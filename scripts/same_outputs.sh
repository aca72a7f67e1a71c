#!/usr/bin/env bash
# Short seeded runs of every training/eval command from two checkouts, then scripts/same_outputs.py.
#   bash scripts/same_outputs.sh BEFORE_CHECKOUT AFTER_CHECKOUT DATASET OUT
# DATASET: a prepared ML-100K folder (fgrpo prepare --config configs/prepare_ml100k.yaml).
# AFTER_PRETRAIN_EXTRA (environment): keys given to AFTER's pretrain-items only, e.g. a key the
# before checkout lacks at its old default (hidden_dropout=0, the default of the refactor's check).
# Uses this checkout's .venv with PYTHONPATH pointing at each checkout's src/.
set -euo pipefail
before=$(realpath "$1"); after=$(realpath "$2"); data=$(realpath "$3"); out=$4
py="$(cd .venv/bin && pwd)/python"  # not realpath: the venv's python is a symlink
runs() {
  local src=$1 dir=$2 extra=$3; mkdir -p "$dir"; dir=$(realpath "$dir")
  (cd "$src" && export PYTHONPATH=src && F="$py -m fgrpo" &&
   $F train --config configs/toy.yaml torch_threads=1 output_dir=$dir/toy max_steps=60 eval_every=30 save_every=30 > $dir/toy.log 2>&1 &&
   $F pretrain-items --config configs/pretrain_idtiny_ml100k.yaml dataset=$data output_dir=$dir/pre max_steps=60 eval_every=30 eval_limit=100 $extra > $dir/pre.log 2>&1 &&
   $F sft --config configs/sft_idtiny_ml100k.yaml model=$dir/pre/model dataset=$data output_dir=$dir/sft max_steps=30 torch_threads=1 > $dir/sft.log 2>&1 &&
   $F train --config configs/fgrpo_idtiny_ml100k.yaml torch_threads=1 model=$dir/sft/model dataset=$data output_dir=$dir/idtiny group_size=8 max_steps=6 eval_every=3 eval_limit=40 save_every=3 > $dir/idtiny.log 2>&1 &&
   $F eval model=$dir/sft/model constrained=true dataset=$data split=valid output_dir=$dir/eval limit=50 torch_threads=1 > $dir/eval.log 2>&1 &&
   $F eval method=sasrec dataset=$data split=valid output_dir=$dir/eval_sasrec limit=50 seq_epochs=2 seq_patience=0 torch_threads=1 > $dir/eval_sasrec.log 2>&1)
}
runs "$before" "$out/before" ""
runs "$after" "$out/after" "${AFTER_PRETRAIN_EXTRA:-hidden_dropout=0}"
$py scripts/same_outputs.py "$out/before" "$out/after"
