#!/usr/bin/env bash
# F-GRPO on verl 0.9.1: Qwen3-4B, one node of 8 GPUs, vLLM rollouts, FSDP training.
# NOT run here (no GPU on the reference machine); the estimator, reward layout and reward
# manager are tested on CPU (tests/test_integration_verl.py). Needs fgrpo importable in verl's
# environment (pip install -e . --no-deps, or PYTHONPATH=src) and the data from prepare_data.py:
#   python examples/verl/prepare_data.py runs/ml100k data/verl/ml100k
set -euo pipefail
DATA=${DATA:-data/verl/ml100k}
python examples/verl/main_fgrpo.py \
  algorithm.adv_estimator=fgrpo \
  algorithm.norm_adv_by_std_in_grpo=False \
  algorithm.use_kl_in_reward=False \
  data.train_files="$DATA/train.parquet" \
  data.val_files="$DATA/valid.parquet" \
  data.train_batch_size=64 \
  data.max_prompt_length=2048 \
  data.max_response_length=64 \
  data.filter_overlong_prompts=True \
  actor_rollout_ref.model.path=Qwen/Qwen3-4B \
  actor_rollout_ref.actor.optim.lr=1e-6 \
  actor_rollout_ref.actor.ppo_mini_batch_size=64 \
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8 \
  actor_rollout_ref.actor.use_kl_loss=False \
  actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm \
  actor_rollout_ref.actor.fsdp_config.param_offload=False \
  actor_rollout_ref.rollout.name=vllm \
  actor_rollout_ref.rollout.n=8 \
  actor_rollout_ref.rollout.temperature=1.0 \
  actor_rollout_ref.rollout.tensor_model_parallel_size=1 \
  actor_rollout_ref.rollout.gpu_memory_utilization=0.5 \
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16 \
  reward.reward_manager.name=fgrpo \
  reward.custom_reward_function.path=examples/verl/fgrpo_reward.py \
  reward.custom_reward_function.name=compute_score \
  trainer.n_gpus_per_node=8 \
  trainer.nnodes=1 \
  trainer.total_training_steps=200 \
  trainer.project_name=fgrpo \
  trainer.experiment_name=qwen3-4b-fgrpo \
  trainer.logger='["console"]' \
  "$@"
