"""The config dataclass of every ``fgrpo`` command, in one place: every field with its
one-line help and its default (paper's, or ours where documented). This module sits at the
bottom of the layers with the loader (:mod:`fgrpo.config`): library code may read these
dataclasses, and nothing here imports a library folder at module level.

Defaults marked (paper) follow the F-GRPO paper as summarized in docs/method.md; (ours)
are this project's choices where the paper is silent; (TRL) follow TRL's GRPOTrainer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fgrpo.config import check_output_dir, option
from fgrpo.config.progress import parse_duration

TOY_VOCABULARY = 40  # words of the toy task (fgrpo.data.toy.TOY_WORDS): the largest toy pool


def check_at_least(cfg: object, minimum: float, *keys: str) -> None:
    """ValueError naming the first of ``keys`` whose value is below ``minimum``."""
    for key in keys:
        value = getattr(cfg, key)
        if not value >= minimum:  # also catches a NaN that got this far
            raise ValueError(f"key '{key}' must be >= {minimum:g}, got {value}")


def check_data_options(cfg: DataOptions) -> None:
    """What every command reading data options refuses (each names its key)."""
    check_at_least(cfg, 1, "max_slate", "max_rank", "toy_num_train")
    check_at_least(cfg, 0, "toy_num_valid")
    if cfg.max_rank > cfg.max_slate:
        raise ValueError(f"key 'max_rank' ({cfg.max_rank}) must not exceed 'max_slate' ({cfg.max_slate})")
    check_toy_pool(cfg.toy_pool_size, cfg.toy_max_relevant, TOY_VOCABULARY)
    if cfg.prompt_context is not None:
        check_at_least(cfg, 1, "prompt_context")


def check_toy_pool(pool_size: int, max_relevant: int, words: int) -> None:
    if not 1 <= pool_size <= words:
        raise ValueError(f"key 'toy_pool_size' must be in 1..{words} (the toy vocabulary), got {pool_size}")
    if not 1 <= max_relevant <= pool_size:
        raise ValueError(f"key 'toy_max_relevant' must be in 1..toy_pool_size ({pool_size}), got {max_relevant}")


@dataclass
class ModelOptions:
    model: str = option("builtin:tiny-llama", "Model: a local Hugging Face folder, a hub id (online only), 'builtin:smollm2-135m-instruct', or 'builtin:tiny-llama' (random, for tests and the toy task).")
    dtype: Literal["float32", "bfloat16", "float16"] = option("float32", "Parameter dtype. float32 on CPU (bf16 matmuls are ~300x slower on the reference CPU); bfloat16 on GPUs.")
    use_lora: bool = option(False, "Train LoRA adapters (peft) instead of all weights.")
    lora_r: int = option(16, "LoRA rank.")
    lora_alpha: int = option(32, "LoRA scaling alpha.")
    lora_dropout: float = option(0.0, "LoRA dropout (0 keeps rollouts and training forwards identical).")
    lora_target_modules: str = option("all-linear", "Comma-separated module names to adapt, or 'all-linear'.")
    onednn_linear: bool = option(True, "On CPU in fp32, run the linear layers' forward and backward through oneDNN (fgrpo.kernels.onednn: 2x MKL's sgemm on AMD CPUs, where MKL runs AVX2; same math, fp32 rounding differs); false: torch's default (MKL).", hashed_if_set=True)
    gradient_checkpointing: bool = option(False, "Recompute activations in backward to save memory (GPU setting).")
    tiny_hidden_size: int = option(128, "builtin:tiny-llama only: hidden width.")
    tiny_num_layers: int = option(2, "builtin:tiny-llama only: decoder layers.")
    torch_threads: int = option(0, "CPU threads for torch (0: torch's default, one per core).", bookkeeping=True)


@dataclass
class DataOptions:
    dataset: str = option("toy", "'toy' (built-in synthetic task) or a folder made by `fgrpo prepare` holding train.jsonl and valid.jsonl.")
    toy_pool_size: int = option(8, "Toy task: candidates per pool.")
    toy_max_relevant: int = option(3, "Toy task: at most this many marked (relevant) candidates per pool.")
    toy_num_train: int = option(4000, "Toy task: training examples generated.")
    toy_num_valid: int = option(64, "Toy task: validation examples generated (a different seed).")
    skip_invalid_rows: bool = option(False, "Skip and count malformed data rows (bad JSON or UTF-8, bad fields, a repeated example id) instead of stopping at the first, which names file, line and field; the count is printed and written to output_dir/data_report.json. A split left empty is still an error.")
    prompt_overflow: Literal["error", "skip"] = option("error", "A prompt that, with max_new_tokens, does not fit the model's context (prompt_context): error (stop before training, naming the example's file and line) or skip (drop such examples, counted on the console and in output_dir/data_report.json). Prompts are never truncated: cutting the pool would change the task.")
    prompt_context: int | None = option(None, "Context length the prompt_overflow check uses (null: the model's max_position_embeddings).")
    max_slate: int = option(10, "Largest slate accepted by the parser (paper: 10).")
    max_rank: int = option(5, "Longest ranking accepted by the parser (paper: 5).")


SOFT_TEACHERS = ("model", "sasrec", "gru4rec", "ensemble")  # filler policies whose teachers score the pool


@dataclass
class SFTConfig(ModelOptions, DataOptions):
    """``fgrpo sft``: supervised warm start on targets in the exact output format."""

    output_dir: str = option("runs/sft", "Where the trained model, metrics.jsonl and config are written.")
    seed: int = option(0, "Seed for data order, filler sampling and initialization.")
    max_steps: int = option(200, "Optimizer steps.")
    batch_size: int = option(16, "Examples per optimizer step.")
    micro_batch_size: int = option(0, "Examples per forward and backward within a step (0: the whole batch); the loss is normalized over the whole batch, so the update is the same and the activation memory a fraction (SmolLM2: 1).", hashed_if_set=True)
    learning_rate: float = option(1e-4, "Peak AdamW learning rate (ours: a common SFT value for small LMs).")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    warmup_steps: int = option(10, "Linear warm-up steps before the cosine decay.")
    max_grad_norm: float = option(1.0, "Gradient-norm clip.")
    slate_size: int = option(10, "Target slate size: all relevant candidates plus fillers up to this size (paper: 10).")
    filler_policy: Literal["random", "bm25", "popularity", "model", "sasrec", "gru4rec", "ensemble"] = option("random", "How slate fillers are chosen among non-relevant candidates; model: by the starting model's next-item scores (item-token models, e.g. id-tiny); sasrec / gru4rec: by that baseline, trained first on the train split (tuned, early-stopped on valid, seeded); ensemble: the mean rank of model, sasrec and gru4rec. Under slate_order=model|rollin|teacher this order is the teacher's answer.")
    slate_order: Literal["shuffled", "ascending", "ranked", "model", "teacher", "rollin"] = option("shuffled", "Order of the target slate: shuffled (the original spec), ascending candidate number (no repeats under greedy decoding), ranked (relevant first, then fillers in filler order: the ranking's order), or model (the frozen model's own top items in its order, missed relevant ones at the end, its picks before the first relevant one unsupervised; needs filler_policy=model: docs/results.md), or teacher (the frozen model's top items in its order, ranking = its top max_rank: a distillation of its scorer, the labels left to RL), or rollin (the frozen model's own slate and ranking, every item position before a relevant item labelled with that item: both phases learn to find the target after wrong picks; needs item tokens and a teacher order: filler_policy=model|sasrec|gru4rec|ensemble).")
    teacher_models: list[str] = option([], "Extra frozen teachers whose pool orders are fused with the starting model's by mean rank (Borda) into the order of filler_policy=model|ensemble: item-token model folders (same dataset and tokenizer, e.g. other seeds' backbones) and SASRec/GRU4Rec fits (a scorer.pt of `fgrpo eval`, fitted on this train split). Under slate_order=teacher, a distillation of that ensemble (docs/results.md, eighth and ninth rounds). The starting model's own folder, if listed, counts once; empty: the starting model alone.", hashed_if_set=True)
    constrained_loss: bool = option(False, "SFT softmax over the tokens the decoding constraint allows at each position (item-token models): trains the distribution constrained greedy decoding reads.")
    soft_targets: float = option(0.0, "Weight of soft targets (knowledge distillation, Hinton et al. 2015) at each item position: the loss there is (1 - w) x the cross-entropy of the written item + w x the cross-entropy toward the teacher's pool distribution (each teacher's softmax of its pool scores / soft_temperature, averaged over the teachers of filler_policy and teacher_models), renormalized over the items the constraint allows there. 0: hard targets only; needs constrained_loss and filler_policy=model|sasrec|gru4rec|ensemble (made for slate_order=teacher).", hashed_if_set=True)
    soft_temperature: float = option(1.0, "Temperature of each teacher's pool softmax under soft_targets (> 1 flattens it).", hashed_if_set=True)
    hidden_dropout: float = option(0.0, "Dropout on the embedding, attention and MLP outputs while training (Llama-family models; not saved in the folder: a training-time regularizer). id-tiny on ML-100K: 0.3 (docs/results.md).")
    target: Literal["both", "slate", "rank"] = option("both", "What is supervised: both (slate then ranking, one answer), slate (a selector: the slate alone) or rank (a ranker: the ranking alone, its prompt showing only the gold slate). slate and rank are the two halves of Decoupled SFT, chained by `fgrpo eval method=two_step`.")
    log_every: int = option(10, "Log a metrics line (and, without a terminal, a progress line) every N steps.", bookkeeping=True)
    max_time: str | None = option(None, "Wall-clock budget of the run, seconds or 'HH:MM:SS' (null: no limit). Before a step that would overrun it, the run saves its state (checkpoints/step-N/sft_state.pt), writes the model so far and output_dir/stopped_early.json, and exits 0; `fgrpo sft --resume` continues it exactly.", bookkeeping=True)

    def validate(self) -> None:
        if not 0.0 <= self.hidden_dropout < 1.0:
            raise ValueError(f"key 'hidden_dropout' must be in [0, 1), got {self.hidden_dropout}")
        if self.teacher_models and self.filler_policy not in ("model", "ensemble"):
            raise ValueError(f"key 'teacher_models' needs filler_policy=model|ensemble, got filler_policy={self.filler_policy}")
        if not 0.0 <= self.soft_targets <= 1.0:
            raise ValueError(f"key 'soft_targets' must be in [0, 1], got {self.soft_targets}")
        if not self.soft_temperature > 0:
            raise ValueError(f"key 'soft_temperature' must be > 0, got {self.soft_temperature}")
        if self.soft_targets > 0 and (not self.constrained_loss or self.filler_policy not in SOFT_TEACHERS):
            raise ValueError("key 'soft_targets' needs constrained_loss=true and a scoring teacher, filler_policy="
                             f"{'|'.join(SOFT_TEACHERS)}; got constrained_loss={self.constrained_loss}, filler_policy={self.filler_policy}")
        parse_duration(self.max_time)
        check_data_options(self)
        check_output_dir(self.output_dir)
        check_at_least(self, 1, "max_steps", "batch_size", "slate_size", "log_every", "lora_r")
        check_at_least(self, 0, "learning_rate", "weight_decay", "warmup_steps", "lora_dropout", "torch_threads", "micro_batch_size")
        if not self.max_grad_norm > 0:
            raise ValueError(f"key 'max_grad_norm' must be > 0, got {self.max_grad_norm}")


@dataclass
class TrainConfig(ModelOptions, DataOptions):
    """``fgrpo train``: F-GRPO (or GRPO) from a warm-started model."""

    output_dir: str = option("runs/train", "Where checkpoints, metrics.jsonl, TensorBoard events and the final model are written.")
    seed: int = option(0, "Seed for data order, sampling and initialization.")
    max_steps: int = option(200, "RL optimizer steps.")

    # algorithm
    advantage_estimator: Literal["fgrpo", "grpo"] = option("fgrpo", "fgrpo: a group-relative advantage per phase on that phase's tokens (paper); grpo: one joint reward and advantage on all tokens.")
    group_size: int = option(8, "G: rollouts per prompt (paper: 8).")
    prompts_per_step: int = option(4, "Prompts per optimizer step (each yields G rollouts).")
    slate_reward: Literal["recall", "f1"] = option("recall", "Slate coverage reward: recall of the relevant set (ours, default) or F1.")
    rank_k: int = option(5, "Cut-off k of the NDCG@k ranking reward (ours: 5).")
    invalid_penalty: float = option(-0.5, "Reward given to an invalid phase in place of its reward (ours).")
    rank_weight: float = option(1.0, "λ in L = L_slate + λ·L_rank, and in GRPO's joint reward R_slate + λ·R_rank (paper: 1).")
    scale_by_std: bool = option(False, "Divide advantages by the group std (off, as in Dr. GRPO; paper's setting).")
    clip_eps_low: float = option(0.2, "ε: lower clip of the probability ratio (TRL: 0.2).")
    clip_eps_high: float = option(0.2, "Upper clip of the probability ratio (0.28 gives DAPO's clip-higher).")
    kl_beta: float = option(0.0, "β of the KL penalty to the frozen initial policy (paper setting: 0).")
    loss_aggregation: Literal["token_mean", "seq_mean", "dr_grpo"] = option("dr_grpo", "How token losses are averaged: dr_grpo (constant normalizer, paper's Dr. GRPO setting), token_mean, seq_mean.")
    ppo_epochs: int = option(1, "μ: passes over each rollout batch, one optimizer step after each (1: on-policy, ratio 1; > 1: the ratio moves and the clip acts).")

    # rollouts
    max_new_tokens: int = option(64, "Longest completion sampled.")
    temperature: float = option(1.0, "Sampling temperature for rollouts (log-probs are taken at the same temperature).")
    top_p: float = option(1.0, "Nucleus sampling cut-off for rollouts.")
    constrained_rollouts: bool = option(False, "Sample rollouts under the format constraint (every completion valid; off: the paper's free sampling).")
    static_decode: bool = option(True, "Decode rollouts of a Llama-family model over a preallocated, prompt-shared key/value cache with fused, prepacked projections (fgrpo.rollout.static_llama; logits within ~1e-4 of the forward's; false: transformers' forward and DynamicCache, the reference).", hashed_if_set=True)
    constrained_logprobs: bool = option(True, "With constrained_rollouts: the loss's log-probs (ratio, KL, entropy) are the constrained policy's, the softmax over the allowed tokens the rollouts were sampled from (false: the unconstrained model's, whose gradient also spends itself on tokens the constraint never lets through).")
    share_prompt_prefix: bool = option(True, "Compute a group's prompt once and share its KV cache across the G completions (same gradient, less arithmetic).")

    # optimizer
    learning_rate: float = option(1e-6, "Peak AdamW learning rate (TRL's GRPO default; raise it for small models and LoRA).")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    adam_beta1: float = option(0.9, "AdamW β1.")
    adam_beta2: float = option(0.99, "AdamW β2 (ours: 0.99, common in RL fine-tuning).")
    warmup_steps: int = option(0, "Linear learning-rate warm-up steps.")
    lr_schedule: Literal["cosine", "constant"] = option("constant", "Learning-rate schedule after warm-up.")
    max_grad_norm: float = option(1.0, "Gradient-norm clip.")
    mixed_precision: Literal["no", "bf16"] = option("no", "bf16: every forward (rollouts and training) under torch.autocast(bfloat16) over the dtype weights; with dtype float32 the weights, gradients and AdamW stay float32 (GPU setting; an accelerate launcher's --mixed_precision must agree).")

    # supervised warm-up inside the same command (for models that do not know the format yet)
    sft_warmup_steps: int = option(0, "If > 0, supervised steps on the train split before RL (0: the model is already warm-started).")
    sft_learning_rate: float = option(1e-3, "Learning rate of the supervised warm-up.")
    sft_batch_size: int = option(16, "Batch size of the supervised warm-up.")
    sft_slate_size: int = option(10, "Target slate size of the supervised warm-up.")

    # bookkeeping
    log_every: int = option(1, "Write a metrics line (and, without a terminal, a progress line) every N steps.", bookkeeping=True)
    save_every: int = option(50, "Checkpoint every N steps (and at the end).", bookkeeping=True)
    keep_last: int = option(2, "Checkpoints kept on disk (older ones are deleted).", bookkeeping=True)
    eval_every: int = option(0, "Evaluate greedy decoding on the valid split every N steps (0: never).")
    eval_limit: int = option(64, "Validation examples used by the in-training evaluation.")
    eval_constrained: bool | None = option(None, "Constrain the in-training evaluation's greedy decoding to the format (null: as constrained_rollouts; a model that only writes valid answers under the constraint, like id-tiny, scores 0 unconstrained).")
    tensorboard: bool = option(True, "Also write TensorBoard events to output_dir/tensorboard.", bookkeeping=True)
    max_time: str | None = option(None, "Wall-clock budget of the run, seconds or 'HH:MM:SS' (null: no limit). Before a step that would overrun it (judged by the longest step so far), the run checkpoints, writes its final model and output_dir/stopped_early.json (the step reached), and exits 0; --resume continues it exactly.", bookkeeping=True)
    max_bad_steps: int = option(3, "Stop after this many consecutive steps whose loss, clipped gradient or updated weights were not finite (each is skipped or undone; the run then exits non-zero).")

    def validate(self) -> None:
        check_data_options(self)
        check_output_dir(self.output_dir)
        check_at_least(self, 1, "eval_limit", "max_bad_steps", "sft_batch_size", "sft_slate_size", "lora_r")
        check_at_least(self, 0, "learning_rate", "sft_learning_rate", "weight_decay", "warmup_steps", "sft_warmup_steps",
                       "eval_every", "kl_beta", "clip_eps_low", "clip_eps_high", "lora_dropout", "torch_threads")
        if not self.max_grad_norm > 0:
            raise ValueError(f"key 'max_grad_norm' must be > 0, got {self.max_grad_norm}")
        for key in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, key) < 1:
                raise ValueError(f"key '{key}' must be in [0, 1), got {getattr(self, key)}")
        if self.group_size < 2:
            raise ValueError("key 'group_size' must be >= 2: a group-relative advantage needs a group")
        for key in ("prompts_per_step", "max_steps", "max_new_tokens", "ppo_epochs", "rank_k", "save_every", "keep_last", "log_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"key '{key}' must be >= 1")
        if not 0 < self.top_p <= 1:
            raise ValueError("key 'top_p' must be in (0, 1]")
        if self.temperature <= 0:
            raise ValueError("key 'temperature' must be > 0 for sampled rollouts")
        if self.sft_slate_size > self.max_slate:
            raise ValueError(f"key 'sft_slate_size' ({self.sft_slate_size}) must not exceed 'max_slate' ({self.max_slate})")
        parse_duration(self.max_time)


# keys a resumed run may change: bookkeeping, not what the steps compute
RESUME_MAY_CHANGE = (
    "max_steps", "log_every", "save_every", "keep_last", "eval_every", "eval_limit", "eval_constrained",
    "tensorboard", "max_bad_steps", "torch_threads", "output_dir", "max_time",
)


def check_resume_config(cfg: TrainConfig, saved: Path) -> None:
    """ValueError (a config error) naming the keys that differ from the interrupted run's
    ``config.yaml`` when ``--resume`` would continue from one of its checkpoints: a resumed
    run with another group_size, seed, learning rate... would silently be neither run."""
    import dataclasses

    import yaml

    from fgrpo.config import ConfigError, short

    if not saved.is_file() or not any((saved.parent / "checkpoints").glob("step-*")):
        return  # nothing to continue: --resume starts afresh
    try:
        old = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        raise ConfigError(f"--resume: cannot read the run's config {saved} ({short(str(e), 200)})") from None
    new = dataclasses.asdict(cfg)
    changed = [k for k in new if k in old and k not in RESUME_MAY_CHANGE and old[k] != new[k]]
    if changed:
        what = ", ".join(f"'{k}' ({short(old[k], 40)} -> {short(new[k], 40)})" for k in changed)
        raise ConfigError(
            f"--resume: key {what} differs from the run in {saved.parent} ({saved.name}); resume with the same "
            f"values, or start a new run in another output_dir (only {', '.join(RESUME_MAY_CHANGE)} may change)"
        )


# The tuned configuration of SASRec and GRU4Rec (EvalConfig seq_* keys left at None and
# None fields of baselines.sequential.SeqConfig resolve to these): the best
# valid NDCG@5 of the search in scripts/tune_sequential.py on MovieLens-100K (full training
# split, users mode, early stopping on valid), recorded in
# docs/results/baselines_ml100k/tuning.json and docs/baselines.md.
TUNED: dict[str, dict[str, Any]] = {
    "sasrec": {"hidden": 64, "blocks": 1, "dropout": 0.5, "lr": 3e-3},  # valid NDCG@5 0.7318 (8 configs)
    "gru4rec": {"hidden": 128, "blocks": 1, "dropout": 0.3, "lr": 3e-3},  # valid NDCG@5 0.7279 (8 configs)
}

TRAINED_METHODS = ("popularity", "sasrec", "gru4rec")  # read train.jsonl of the dataset
LLM_METHODS = ("model", "zeroshot", "two_step")  # decode slate + ranking answers (the rest score the pool)

@dataclass
class EvalConfig:
    """``fgrpo eval``: greedy decoding on a split, metrics through ir_measures."""

    model: str = option("runs/train/model", "Model folder to evaluate, or 'builtin:smollm2-135m-instruct' (ignored by the scorer methods).")
    method: Literal["model", "zeroshot", "two_step", "random", "popularity", "bm25", "dense", "sasrec", "gru4rec"] = option("model", "What produces the rankings: model (the LLM, one answer), zeroshot (the same with the zero-shot prompt, for an untrained instruct model), two_step (selector writes the slate, then ranker ranks it: docs/zero-shot-and-decoupled.md), or a scorer baseline that ranks the pool (dense: zero-shot MiniLM cosine; sasrec/gru4rec: trained here on train.jsonl first, early-stopped on valid.jsonl's NDCG@5).")
    prompt_style: Literal["standard", "zeroshot"] | None = option(None, "LLM methods: 'standard' (the prompt models are trained on) or 'zeroshot' (steps spelled out plus a worked example); null: zeroshot for method=zeroshot, standard otherwise.")
    selector: str | None = option(None, "two_step: model writing the slate (step 1); null: `model`.")
    ranker: str | None = option(None, "two_step: model ranking the selector's slate (step 2); null: `model`.")
    dataset: str = option("toy", "'toy' or a folder made by `fgrpo prepare` (the split file and, for popularity/sasrec/gru4rec, train.jsonl; sasrec/gru4rec early-stop on valid.jsonl).")
    split: Literal["test", "valid", "train"] = option("test", "Which split to score.")
    limit: int | None = option(None, "Score only the first N examples of the split (None: all).")
    train_dataset: str | None = option(None, "popularity/sasrec/gru4rec: the folder whose train.jsonl (and valid.jsonl, for early stopping) they are fitted on, so that they score `dataset`'s pools with a model of another dataset of the same items (null: `dataset`).", hashed_if_set=True)
    output_dir: str = option("runs/eval", "Where metrics.json, metrics.md and predictions.jsonl are written.")
    seed: int = option(0, "Seed (random baseline, toy data, sasrec/gru4rec initialization and shuffling).")
    max_slate: int = option(10, "Parser limit on the slate (paper: 10); scorers' slate size.")
    max_rank: int = option(5, "Parser limit on the ranking (paper: 5); scorers' ranking size.")
    max_new_tokens: int = option(64, "Longest completion decoded.")
    batch_size: int = option(8, "Prompts decoded together.", bookkeeping=True)
    log_every: int = option(50, "Without a terminal (a log file): a progress line about every N examples decoded (a terminal gets a live bar).", bookkeeping=True)
    constrained: bool | None = option(None, "Constrain greedy decoding to the output format, so every output is valid (off: the paper's protocol, where format errors count; null: on for a model folder with item-token labels, e.g. id-tiny, which writes valid answers only under the constraint, off otherwise).")
    ks: list[int] = option([1, 3, 5], "Cut-offs of Recall/Precision/Hit/NDCG.")
    dtype: Literal["float32", "bfloat16", "float16"] = option("float32", "Parameter dtype (float32 on CPU).")
    torch_threads: int = option(0, "CPU threads for torch (0: default).", bookkeeping=True)
    toy_pool_size: int = option(8, "Toy task: candidates per pool.")
    toy_max_relevant: int = option(3, "Toy task: at most this many relevant per pool.")
    dense_batch_size: int = option(64, "dense: texts encoded together by MiniLM.", bookkeeping=True)
    seq_epochs: int = option(200, "sasrec/gru4rec: the most training epochs (early stopping on valid usually ends far sooner: docs/baselines.md).")
    seq_patience: int = option(10, "sasrec/gru4rec: stop after this many valid evaluations without a better valid NDCG@5 and restore the best epoch's weights (the dataset's valid.jsonl; never the test split); 0: train seq_epochs epochs, no valid split read.")
    seq_eval_every: int = option(1, "sasrec/gru4rec: epochs between valid NDCG@5 evaluations.")
    scorer_from: str | None = option(None, "sasrec/gru4rec: the scorer.pt an earlier eval saved (each fit writes one to its output_dir); loaded instead of fitting again. It must have been fitted with this run's seq_* keys and seed on the same train split, or the run stops naming what differs (null: fit here).", bookkeeping=True)
    seq_train_on: Literal["users", "windows"] = option("users", "sasrec/gru4rec: 'users' = each user's sequence rebuilt from train.jsonl (meta user/position), trained on once in chunks of seq_max_len + 1 (as the SASRec authors; ~10x faster per epoch); 'windows' = every training row's history + target.")
    seq_lr: float | None = option(None, "sasrec/gru4rec: Adam learning rate (None: the tuned value, 0.003 for both: docs/results/baselines_ml100k/tuning.json).")
    seq_batch_size: int = option(128, "sasrec/gru4rec: training sequences per step.")
    seq_hidden: int | None = option(None, "sasrec/gru4rec: embedding and hidden size (None: the tuned value, 64 sasrec / 128 gru4rec).")
    seq_blocks: int | None = option(None, "sasrec: self-attention blocks; gru4rec: GRU layers (None: the tuned value, 1 for both).")
    seq_heads: int = option(1, "sasrec: attention heads (must divide seq_hidden).")
    seq_max_len: int = option(50, "sasrec/gru4rec: items per training chunk and most recent history items fed to the model.")
    seq_dropout: float | None = option(None, "sasrec/gru4rec: dropout rate (None: the tuned value, 0.5 sasrec / 0.3 gru4rec).")
    skip_invalid_rows: bool = option(False, "Skip and count malformed data rows instead of stopping at the first (as in fgrpo train); the count is printed and written to metrics.json (data/skipped_rows) and output_dir/data_report.json.")
    prompt_overflow: Literal["error", "skip"] = option("error", "LLM methods: a prompt that, with max_new_tokens, does not fit the model's context: error (naming the example's file and line) or skip (not scored; counted in metrics.json as data/prompt_overflow_skipped). Never truncated.")
    prompt_context: int | None = option(None, "Context length the prompt_overflow check uses (null: the model's max_position_embeddings).")

    def validate(self) -> None:
        check_output_dir(self.output_dir)
        check_at_least(self, 1, "max_slate", "max_rank", "max_new_tokens", "batch_size", "log_every")
        check_at_least(self, 0, "torch_threads")
        if self.prompt_context is not None:
            check_at_least(self, 1, "prompt_context")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"key 'ks' must be a non-empty list of cut-offs >= 1, got {self.ks}")
        check_toy_pool(self.toy_pool_size, self.toy_max_relevant, TOY_VOCABULARY)
        if self.method == "zeroshot" and self.prompt_style == "standard":
            raise ValueError("key 'prompt_style': method 'zeroshot' is the zeroshot prompt; use method=model for the standard one")
        if self.method != "two_step" and (self.selector is not None or self.ranker is not None):
            raise ValueError("keys 'selector' and 'ranker' are for method=two_step only")
        if self.train_dataset is not None:
            if self.method not in TRAINED_METHODS:
                raise ValueError(f"key 'train_dataset' is for the fitted scorers ({', '.join(TRAINED_METHODS)}), not method={self.method}")
            if "toy" in (self.dataset, self.train_dataset):
                raise ValueError("key 'train_dataset' needs prepared folders: the toy task generates its own train split")
        if self.max_rank > self.max_slate:
            raise ValueError(f"key 'max_rank' ({self.max_rank}) must not exceed 'max_slate' ({self.max_slate})")
        if self.limit is not None and self.limit < 1:
            raise ValueError("key 'limit' must be >= 1 or null")
        keys = ("dense_batch_size", "seq_epochs", "seq_batch_size", "seq_hidden", "seq_blocks", "seq_heads", "seq_max_len", "seq_eval_every")
        for key in keys:
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"key '{key}' must be >= 1, got {getattr(self, key)}")
        if self.seq_patience < 0:
            raise ValueError(f"key 'seq_patience' must be >= 0, got {self.seq_patience}")
        hidden = self.seq_hidden if self.seq_hidden is not None or self.method not in TUNED else TUNED[self.method]["hidden"]
        if hidden is not None and hidden % self.seq_heads:
            raise ValueError(f"key 'seq_heads' ({self.seq_heads}) must divide 'seq_hidden' ({hidden})")
        if self.seq_dropout is not None and not 0.0 <= self.seq_dropout < 1.0:
            raise ValueError(f"key 'seq_dropout' must be in [0, 1), got {self.seq_dropout}")
        if self.seq_lr is not None and self.seq_lr <= 0:
            raise ValueError(f"key 'seq_lr' must be > 0, got {self.seq_lr}")


@dataclass
class RankConfig:
    """``fgrpo rank``: a slate and a ranking for every example of a JSONL file, with a trained model."""

    model: str = option("runs/train/model", "Model folder written by fgrpo: its fgrpo.json sets the answer format (parser limits, prompt style, completion length).")
    input: str = option("-", "JSONL, one example a line: the dataset schema (relevance not needed) or {query, candidates} with candidates as {id, text} objects or plain texts (ids 1..N); a missing id is the line number. '-': stdin.")
    output: str = option("-", "Where one JSON line per example goes ({id, slate, ranking, valid, errors, completion}, candidate ids); '-': stdout. A file is written only once all are ranked.")
    batch_size: int = option(8, "Prompts decoded together.", bookkeeping=True)
    constrained: bool | None = option(None, "Decode only valid outputs (distinct in-pool slate, ranking within the slate), as in eval (null: on for a model folder with item-token labels, e.g. id-tiny, off otherwise).")
    max_new_tokens: int | None = option(None, "Longest completion decoded (null: the model folder's fgrpo.json, else 96).")
    dtype: Literal["float32", "bfloat16", "float16"] = option("float32", "Parameter dtype (float32 on CPU).")
    torch_threads: int = option(0, "CPU threads for torch (0: default).", bookkeeping=True)
    log_every: int = option(50, "Without a terminal: a progress line about every N examples (a terminal gets a live bar).", bookkeeping=True)

    def validate(self) -> None:
        check_at_least(self, 1, "batch_size", "log_every")
        check_at_least(self, 0, "torch_threads")
        if self.max_new_tokens is not None:
            check_at_least(self, 1, "max_new_tokens")


@dataclass
class ReportConfig:
    """``fgrpo report FOLDER``: one self-contained HTML page of a run or a comparison."""

    folder: str = option("runs/eval", "An eval output_dir (metrics.json, predictions.jsonl), a train/sft output_dir (metrics.jsonl) or a compare output_dir (results.json).")
    output: str | None = option(None, "The HTML file written (null: FOLDER/report.html).")
    max_examples: int = option(200, "Predictions shown in the page's table (the first N of the split; the metrics use all).")

    def validate(self) -> None:
        check_at_least(self, 1, "max_examples")


@dataclass
class PretrainItemsConfig:
    """``fgrpo pretrain-items``: build the id-tiny preset and pretrain it on next items."""

    dataset: str = option("runs/idtiny/data", "A sequential dataset folder made by `fgrpo prepare` (train.jsonl with meta.user/position/history_ids).")
    output_dir: str = option("runs/idtiny/pretrain", "Where model/ (the Hugging Face folder), metrics.jsonl, config.yaml and summary.json are written.")
    seed: int = option(0, "Seed of initialization and window sampling.")
    hidden_size: int = option(128, "Hidden width of the Llama.")
    num_layers: int = option(4, "Decoder layers.")
    num_heads: int = option(4, "Attention heads (hidden_size must be divisible by it).")
    item_embeddings_from: str | None = option(None, "A sasrec/gru4rec scorer.pt (written by `fgrpo eval method=sasrec`): each item's embedding starts from its row there, rescaled to the init's spread (LLaRA's start from SASRec's item embeddings); hidden_size must equal its width (SASRec's tuned 64). null: random init.", hashed_if_set=True)
    attention_dropout: float = option(0.0, "Dropout on the attention weights while training (Llama's only dropout; saved in the model's config, so SFT and RL train with it too).")
    hidden_dropout: float = option(0.0, "Dropout on the embedding, attention and MLP outputs while pretraining (as SASRec's; not saved in the folder). ML-100K: 0.3 with 3,000 steps (docs/results.md).")
    max_steps: int = option(3000, "Optimizer steps of next-item pretraining (0: save the random model).")
    batch_size: int = option(64, "Windows per step.")
    seq_len: int = option(32, "Most items per window (the SFT prompt shows 10 history items).")
    learning_rate: float = option(0.002, "Peak AdamW learning rate (ours: a common value for SASRec-sized models).")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    warmup_steps: int = option(100, "Linear warm-up steps before the cosine decay.")
    max_grad_norm: float = option(1.0, "Gradient-norm clip.")
    eval_limit: int = option(0, "If > 0, score this many valid examples with the pretrained next-item logits (NDCG@5 in summary.json).")
    eval_every: int = option(0, "If > 0 (and eval_limit > 0), score the valid examples every N steps and keep the best weights: early stopping on valid next-item NDCG@5, as the SASRec/GRU4Rec baselines get.")
    patience: int = option(0, "Stop after this many evaluations without a better valid score (0: run max_steps, still restoring the best).")
    log_every: int = option(50, "Write a metrics line every N steps.")
    torch_threads: int = option(1, "CPU threads for torch (0: torch's default).")
    skip_invalid_rows: bool = option(False, "Skip and count malformed data rows instead of stopping at the first (as in fgrpo train); the count is printed and written to output_dir/data_report.json.")

    def validate(self) -> None:
        if not 0.0 <= self.hidden_dropout < 1.0:
            raise ValueError(f"key 'hidden_dropout' must be in [0, 1), got {self.hidden_dropout}")

        check_output_dir(self.output_dir)
        check_at_least(self, 0, "max_steps", "learning_rate", "weight_decay", "warmup_steps", "eval_limit", "torch_threads")
        check_at_least(self, 1, "num_heads", "hidden_size")
        if not self.max_grad_norm > 0:
            raise ValueError(f"key 'max_grad_norm' must be > 0, got {self.max_grad_norm}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"key 'hidden_size' ({self.hidden_size}) must be divisible by 'num_heads' ({self.num_heads})")
        for key in ("batch_size", "seq_len", "num_layers", "log_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"key '{key}' must be >= 1")


# check-data without a model folder (fgrpo.json) that says otherwise: train's defaults
CHECK_DATA_FALLBACK = {"max_slate": 10, "max_rank": 5, "max_new_tokens": 64, "prompt_style": "standard"}


@dataclass
class CheckDataConfig:
    """``fgrpo check-data FOLDER``: the checks of a dataset folder before training (docs/data.md)."""

    dataset: str = option("data/prepared", "The dataset folder to check (train/valid/test.jsonl): the command's FOLDER argument.")
    model: str | None = option(None, "A model folder or builtin name: prompt lengths are counted in its tokens and checked against its context (null: not checked). Its fgrpo.json gives max_slate, max_rank, max_new_tokens and the prompt style.")
    splits: list[str] = option(["train", "valid", "test"], "The split files checked (train and test must be there; valid is optional).")
    max_slate: int | None = option(None, "Parser slate limit the pools are checked against (null: the model folder's, else 10).")
    max_rank: int | None = option(None, "Parser ranking limit of the rendered prompt (null: the model folder's, else 5).")
    max_new_tokens: int | None = option(None, "Tokens a completion needs after the prompt, within the context (null: the model folder's, else 64, train's default).")
    prompt_style: Literal["standard", "zeroshot"] | None = option(None, "The prompt counted (null: the model folder's, else standard).")
    prompt_context: int | None = option(None, "Context length prompts are checked against (null: the model's max_position_embeddings).")
    output_dir: str = option("runs/check-data", "Where check_data.json (the report) is written.")

    def validate(self) -> None:
        check_output_dir(self.output_dir)
        if not self.splits:
            raise ValueError("key 'splits' must list at least one split")
        for key in ("max_slate", "max_rank", "max_new_tokens", "prompt_context"):
            if getattr(self, key) is not None:
                check_at_least(self, 1, key)


# --------------------------------------------------------------------------- prepare


DatasetName = Literal[
    "ml100k",
    "ml1m",
    "llara",
    "lastfm",
    "recbole",
    "hf_dataset",
    "hotpotqa_distractor",
    "hotpotqa_ircot",
    "musique",
    "gold_retrieved",
]


@dataclass
class PrepareConfig:
    dataset: DatasetName = option(
        "ml100k",
        "ml100k (RecBole atomic files), ml1m (ratings.dat + movies.dat), llara (LLaRA's "
        "splits exported to JSONL/CSV), lastfm (LLaRA's and S-DPO's LastFM files, pickles "
        "read safely; see protocol), recbole (RecBole atomic or sequence .inter files, "
        "optional .item; LLMRank's), hf_dataset (a datasets.save_to_disk folder), hotpotqa_distractor (original JSON), hotpotqa_ircot "
        "(IRCoT JSONL), musique (original JSONL/JSON), gold_retrieved (X.json + "
        "X_retrieved_context*.jsonl folder)",
    )
    input_path: str | None = option(
        None,
        "raw file (QA) or folder (ml100k, ml1m, llara, lastfm, recbole, hf_dataset, gold_retrieved); lastfm: the "
        "folder holding llara/, napo/, sdpo/ (the layout of ../shared/data/lastfm); ml100k: "
        "null fetches it from the recbole==1.2.1 wheel into $FGRPO_CACHE or ~/.cache/fgrpo",
    )
    interactions_file: str | None = option(
        None,
        "ml100k, ml1m, recbole: the interaction file, relative to input_path or absolute "
        "(null: ml-100k.inter, ratings.dat; recbole: the folder's NAME.inter or "
        "NAME.train/valid/test.inter)",
    )
    items_file: str | None = option(
        None,
        "ml100k, ml1m, recbole: the item file, relative to input_path or absolute (null: "
        "ml-100k.item, movies.dat; recbole: NAME.item if present, else items shown by id)",
    )
    user_field: str = option("user_id", "recbole, hf_dataset (interactions): the user column")
    item_field: str = option(
        "item_id", "recbole, hf_dataset (interactions): the item column (sequence files: the target)"
    )
    time_field: str = option(
        "timestamp", "recbole atomic, hf_dataset (interactions): the timestamp column"
    )
    item_list_field: str = option(
        "item_id_list", "recbole: the history column of sequence files (ids separated by spaces)"
    )
    item_text_field: str | None = option(
        None,
        "recbole (.item file), hf_dataset (interactions): the item-name column (null: "
        "recbole takes the first of movie_title, title, name, item_name; hf_dataset shows ids)",
    )
    id_field: str = option("id", "hf_dataset (examples): the example id column (absent: split-row)")
    query_field: str = option(
        "query", "hf_dataset: the query column; its presence selects the examples shape"
    )
    candidates_field: str = option(
        "candidates", "hf_dataset (examples): list of {id, text} or of strings (ids 1..N)"
    )
    relevance_field: str = option(
        "relevance", "hf_dataset (examples): list of relevant ids, or an id -> grade struct"
    )
    protocol: Literal["llara", "sdpo_pools"] = option(
        "llara",
        "lastfm: llara (LLaRA's split, our seeded pools: negatives outside the user's whole "
        "history) or sdpo_pools (S-DPO's fixed valid/test pools as given; train as llara)",
    )
    output_dir: str = option(
        "data/prepared", "folder for train/valid/test.jsonl and manifest.json (relative to cwd)"
    )
    seed: int = option(0, "seed of every random choice (negatives, padding, splits, order)")
    pool_size: int = option(20, "candidates per example (target/relevant ones included)")
    history_len: int = option(10, "recommendation: most recent history items shown in the query")
    max_train_per_user: int | None = option(
        None, "recommendation: keep each user's most recent training positions only (null: all)"
    )
    num_targets: int = option(
        1,
        "recommendation (ml100k, ml1m): relevant items per example, the user's next "
        "num_targets interactions (1: leave-one-out; 3: the coverage-bound protocol, "
        "docs/data.md)",
    )
    target_grades: Literal["binary", "order"] = option(
        "binary",
        "num_targets > 1: grades of the targets, binary (all 1) or order (num_targets..1, "
        "the very next item highest)",
    )
    max_passage_words: int | None = option(
        128,
        "QA: cut each passage to this many whitespace-separated WORDS (a tokenizer-free "
        "bound on prompt length; null: no cut)",
    )
    valid_fraction: float = option(0.1, "QA: fraction of questions in the valid split")
    test_fraction: float = option(0.1, "QA: fraction of questions in the test split")
    max_examples: int | None = option(
        None, "keep a seeded subset of at most this many examples per split (null: all)"
    )
    skip_invalid: bool = option(
        False, "false: a bad record raises naming file, line and field; true: skip and count it"
    )
    skip_invalid_rows: bool | None = option(
        None,
        "the same as skip_invalid, under the name the other commands use (null: skip_invalid "
        "decides; true/false: overrides it)",
    )
    task: str | None = option(
        None,
        "task name written in each example (null: movies for MovieLens, passages for QA, "
        "for llara from the folder name: movies / music (lastfm) / games (steam))",
    )
    dedup_overlap: float = option(
        0.5,
        "gold_retrieved: a retrieved passage with a gold passage's title sharing at least "
        "this fraction of the shorter text's word trigrams is a copy of it and is dropped",
    )
    llara_padding_id: int | None = option(
        None, "llara: padding item id to drop from 'seq' (MovieLens 1682, LastFM 4606, Steam 3581)"
    )
    prompt_tokenizer: str | None = option(
        None,
        "model folder or builtin name whose tokenizer counts the rendered prompts' tokens for "
        "the manifest's prompt_lengths (null: not recorded)",
    )

    def __post_init__(self) -> None:
        if self.skip_invalid_rows is not None:
            self.skip_invalid = self.skip_invalid_rows

    def validate(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.pool_size < 2:
            raise ValueError(f"pool_size must be >= 2, got {self.pool_size}")
        if self.history_len < 1:
            raise ValueError(f"history_len must be >= 1, got {self.history_len}")
        if self.max_train_per_user is not None and self.max_train_per_user < 0:
            raise ValueError(f"max_train_per_user must be >= 0, got {self.max_train_per_user}")
        if self.num_targets < 1:
            raise ValueError(f"num_targets must be >= 1, got {self.num_targets}")
        if self.num_targets > 1 and self.dataset not in ("ml100k", "ml1m"):
            raise ValueError(
                f"num_targets {self.num_targets} needs dataset ml100k or ml1m (the next-item "
                f"builder over whole user histories), got '{self.dataset}'"
            )
        if self.pool_size <= self.num_targets:
            raise ValueError(
                f"pool_size must exceed num_targets ({self.num_targets}), got {self.pool_size}"
            )
        if self.max_passage_words is not None and self.max_passage_words < 1:
            raise ValueError(f"max_passage_words must be >= 1, got {self.max_passage_words}")
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"max_examples must be >= 1, got {self.max_examples}")
        for name in ("valid_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.valid_fraction + self.test_fraction >= 1:
            raise ValueError("valid_fraction + test_fraction must be < 1 (no training questions)")
        if not 0 < self.dedup_overlap <= 1:
            raise ValueError(f"dedup_overlap must be in (0, 1], got {self.dedup_overlap}")
        if self.protocol != "llara" and self.dataset != "lastfm":
            raise ValueError(f"protocol '{self.protocol}' is for dataset lastfm only")
        if self.input_path is None and self.dataset not in ("ml100k", "hf_dataset"):
            raise ValueError(f"input_path is required for dataset '{self.dataset}'")
        if self.task is not None and not self.task.strip():
            raise ValueError("task must be a non-empty name or null")


# --------------------------------------------------------------------------- compare
Kind = Literal["train", "sft", "scorer", "model", "zeroshot", "decoupled_sft"]


@dataclass
class MethodSpec:
    """One entry of ``methods:`` in an experiment file."""

    name: str = option("", "Row name in the results (unique); a sweep appends [key=value, ...].")
    kind: Kind = option("train", "train: `fgrpo train` then eval; sft: `fgrpo sft` then eval; scorer: `fgrpo eval method=...` (random, popularity, bm25, dense, sasrec, gru4rec); model: evaluate an existing model folder; zeroshot: an untrained model with the zero-shot prompt, one answer (method zeroshot) or two (method two_step); decoupled_sft: `fgrpo sft target=slate` and `target=rank` (each with the same SFT budget), then eval method=two_step of the pair.")
    overrides: dict[str, Any] = option({}, "Keys of the command's config: TrainConfig (train, over `base`), SFTConfig (sft and decoupled_sft, over the model/data keys of `base`), EvalConfig (scorer: `method`, default the name; model: `model`, the folder; zeroshot: `model`, default base's, and `method`, zeroshot or two_step). In a string value, `{seed}` becomes the run's seed (a per-seed input, e.g. model: runs/backbones/seed{seed}/model).")
    sweep: dict[str, Any] = option({}, "key -> list of values: one method per combination (cartesian product), e.g. {rank_weight: [0.5, 1, 2]}.")
    warm_start: str | None = option(None, "train/sft/decoupled_sft only: name of an earlier train/sft method whose model (same seed) this one starts from (decoupled_sft: both of its models).")
    seeds: list[int] | None = option(None, "Seeds of this method (null: all seeds for train/sft/decoupled_sft and the seeded scorers random/sasrec/gru4rec; the first seed only for deterministic ones).")
    eval: dict[str, Any] = option({}, "EvalConfig keys for this method's evaluation, over the experiment's `eval`.")


@dataclass
class ExtraEvalSpec:
    """One entry of ``extra_evals:`` in an experiment file: another dataset every run is also scored on."""

    name: str = option("", "Name of the dataset in the results (unique): its table in results.md, `extra_evals.<name>` in results.json, runs/<method>/seed<k>/extra/<name>/.")
    dataset: str = option("", "Folder made by `fgrpo prepare` whose split is scored, with the same item ids as `base.dataset` (an item the main dataset does not have stops the compare before any extra evaluation).")
    split: Literal["test", "valid", "train"] = option("test", "Which split of it to score.")
    limit: int | None = option(None, "Score only its first N examples (null: all).")


@dataclass
class CompareConfig:
    """``fgrpo compare``: methods x seeds with equal budgets, one results table and plots."""

    output_dir: str = option("runs/compare", "Where runs/<method>/seed<k>/, results.md, results.json, runs.csv and the plots are written.")
    seeds: list[int] = option([0, 1, 2], "Training seeds; each trained (and seeded scorer) method runs once per seed.")
    only_seeds: list[int] | None = option(None, "Run only the runs of these seeds (a subset of `seeds`) in this process, to split one experiment across processes or machines: the rest are left to the others (deterministic methods run with the first of `seeds`), and the tables cover every run finished so far. null: every seed.", bookkeeping=True)
    base: dict[str, Any] = option({}, "`fgrpo train` keys shared by every trained method (the equal budget: max_steps, group_size, prompts_per_step, learning_rate, model...); its model/data keys also reach sft methods and evaluations.")
    methods: list[dict[str, Any]] = option([], "The methods: a list of {name, kind, overrides, sweep, warm_start, seeds, eval} (see docs/compare.md).")
    eval: dict[str, Any] = option({}, "`fgrpo eval` keys for every evaluation (split, limit, max_new_tokens, batch_size, ...); dataset, max_slate/max_rank and toy keys come from `base`.")
    extra_evals: list[dict[str, Any]] = option([], "More datasets every run is also scored on, after its main evaluation, with the same model and eval keys: a list of {name, dataset, split, limit} (see docs/compare.md); fitted scorers are trained on `base.dataset`'s train split and only score these pools.")
    poll_seconds: float = option(0.2, "How often a run's resident memory is sampled (seconds).")
    reward_smoothing: int = option(0, "Moving-average window (steps) of the reward curves (0: about 1/20 of the steps).")
    stop_on_failure: bool = option(False, "Stop at the first failed run (false: record it, go on, exit 1 at the end).")

    def validate(self) -> None:
        if not self.seeds:
            raise ValueError("key 'seeds' must list at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"key 'seeds' has repeats: {self.seeds}")
        if self.only_seeds is not None and (not self.only_seeds or set(self.only_seeds) - set(self.seeds)):
            raise ValueError(f"key 'only_seeds' must be a non-empty subset of 'seeds' {self.seeds}, got {self.only_seeds}")
        if not self.methods:
            raise ValueError("key 'methods' must list at least one method")
        if self.poll_seconds <= 0:
            raise ValueError("key 'poll_seconds' must be > 0")
        if self.reward_smoothing < 0:
            raise ValueError("key 'reward_smoothing' must be >= 0")
        # the runs themselves (each method's command config) are built and checked by
        # fgrpo.experiments.spec.load_compare_config
