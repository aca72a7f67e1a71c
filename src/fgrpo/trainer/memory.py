"""Per-GPU memory of an F-GRPO step, as small pure functions (numbers in bytes).

An estimate, not a measurement: it counts the big tensors and ignores allocator
fragmentation, CUDA context (~0.5-1 GiB), communication buckets, and small buffers. What
it counts, for the way fgrpo's trainer works:

- model states per strategy: ``ddp`` (every GPU holds everything: the trainer's own
  gradient all-reduce), ``fsdp`` (FSDP2 full shard: parameters, gradients and AdamW
  states split over the GPUs; one layer gathered at a time, plus the next one prefetched),
  ``deepspeed`` (DeepSpeed ZeRO-2: 16-bit parameters replicated, gradients and float32
  master weights + AdamW states split; the ZeRO paper's count). All three run in the
  trainer (docs/scale-out.md);
- training activations of ONE micro-batch: the trainer runs forward and backward one
  prompt group (G completions) at a time, so a step's other groups never coexist. Under
  ``fsdp`` and ``deepspeed`` the training forward repeats the prompt for every completion
  (one model call per micro-batch, fgrpo/trainer/sharded.py), whatever
  ``share_prompt_prefix`` says;
- the log-softmax over the vocabulary for that group's completion tokens;
- the rollout KV cache of all of a GPU's prompt groups at once (an upper bound: the
  engine may decode them one after another); under ``fsdp`` also the whole model
  gathered for the rollout (in the compute dtype).

Peak = parameters + optimizer + max(gradients + training activations + logits, rollout KV
cache + gathered weights), because rollouts run before backward (no gradients held) and
free their cache.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

GIB = 2**30
STRATEGIES = ("ddp", "fsdp", "deepspeed")  # the launch names of fgrpo.trainer.launch
STRATEGY_ALIASES = {"zero2": "deepspeed"}  # the dry run's former name of the DeepSpeed (ZeRO-2) estimate


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from an architecture (counted on the meta-device model)."""

    total_params: int
    trainable_params: int
    num_layers: int
    hidden_size: int
    q_dim: int  # attention heads x head dim
    kv_dim: int  # key-value heads x head dim
    intermediate_size: int
    vocab_size: int
    largest_unit_params: int  # the biggest FSDP unit: a decoder layer or the embedding
    largest_tensor_params: int  # the biggest single parameter (the all-reduce buffer)


@dataclass(frozen=True)
class Workload:
    group_size: int
    prompts_per_step: int
    prompt_tokens: int
    completion_tokens: int
    share_prompt_prefix: bool
    gradient_checkpointing: bool


@dataclass(frozen=True)
class Precision:
    param_bytes: int  # storage of the frozen/base weights (the config's dtype)
    trainable_bytes: int  # storage of the trained weights (LoRA adapters: float32, as peft keeps them)
    compute_bytes: int  # activations: 2 under bf16 autocast or 16-bit weights, else 4
    mixed: bool  # float32 weights computed in bf16 (autocast)


def precision_of(dtype: str, mixed_precision: str, use_lora: bool) -> Precision:
    size = {"float32": 4, "bfloat16": 2, "float16": 2}[dtype]
    mixed = mixed_precision == "bf16" and size == 4
    trainable = 4 if use_lora else size
    return Precision(size, trainable, 2 if (mixed or size == 2) else 4, mixed)


@dataclass(frozen=True)
class Estimate:
    strategy: str
    num_gpus: int
    weights: int  # parameters held (sharded or not), including gathered / autocast copies
    gradients: int
    optimizer: int  # AdamW moments (+ float32 master weights under ZeRO-2 mixed precision)
    activations: int  # one micro-batch (one prompt group), training forward
    logits: int  # vocabulary log-softmax of that micro-batch, with its gradient
    rollout_kv: int  # key/value cache while sampling
    rollout_weights: int  # FSDP: the full model gathered while sampling (0 otherwise)
    peak: int

    def parts_gib(self) -> dict[str, float]:
        """The byte fields in GiB."""
        return {k: v / GIB for k, v in asdict(self).items() if k not in ("strategy", "num_gpus")}


def model_state_bytes(shape: ModelShape, prec: Precision, strategy: str, num_gpus: int) -> tuple[int, int, int]:
    """(weights, gradients, optimizer) bytes per GPU."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r}: one of {STRATEGIES}")
    n = num_gpus
    p, pt = shape.total_params, shape.trainable_params
    stored = (p - pt) * prec.param_bytes + pt * prec.trainable_bytes
    if strategy == "ddp":
        autocast_copies = 2 * p if prec.mixed else 0  # bf16 casts cached for the length of a forward
        reduce_buffer = shape.largest_tensor_params * prec.trainable_bytes  # one gradient reduced at a time
        return stored + autocast_copies, pt * prec.trainable_bytes + reduce_buffer, 2 * pt * prec.trainable_bytes
    if strategy == "fsdp":
        gathered = 2 if prec.mixed else prec.param_bytes
        weights = stored // n + 2 * shape.largest_unit_params * gathered  # current unit + prefetched next
        grads = pt * prec.trainable_bytes // n + shape.largest_unit_params * prec.trainable_bytes  # one unit before reduce-scatter
        return weights, grads, 2 * pt * prec.trainable_bytes // n
    # deepspeed (ZeRO-2): DeepSpeed keeps the module in 16 bits under mixed precision, float32 master copies sharded
    module = 2 if prec.mixed else prec.param_bytes
    optim = 12 * pt if prec.mixed else 2 * pt * prec.trainable_bytes  # float32 master + 2 moments, or 2 moments
    return p * module, pt * module // n, optim // n


def layer_activation_elements(shape: ModelShape) -> int:
    """Per token, what one pre-norm GQA/SwiGLU decoder layer keeps for backward (fused
    SDPA/flash attention: no sequence x sequence scores): the two norms' inputs and
    outputs (4h), q through q-norm, rotary, attention input/output and o_proj input (5q),
    k and v through the same (4kv), the MLP's gate, up, activation and product (4I)."""
    return 4 * shape.hidden_size + 5 * shape.q_dim + 4 * shape.kv_dim + 4 * shape.intermediate_size


def training_tokens(work: Workload) -> int:
    """Tokens in one micro-batch's forward: the prompt once plus G completions when the
    prefix is shared, else G full sequences."""
    g, lp, t = work.group_size, work.prompt_tokens, work.completion_tokens
    return lp + g * t if work.share_prompt_prefix else g * (lp + t)


def activation_bytes(shape: ModelShape, work: Workload, compute_bytes: int) -> int:
    """One micro-batch. With checkpointing: every layer's input, plus one layer recomputed
    in full during backward; without: every layer in full."""
    tokens = training_tokens(work)
    per_layer = layer_activation_elements(shape)
    if work.gradient_checkpointing:
        return tokens * (shape.num_layers * shape.hidden_size + per_layer) * compute_bytes
    return tokens * shape.num_layers * per_layer * compute_bytes


def logits_bytes(shape: ModelShape, work: Workload, compute_bytes: int) -> int:
    """G x T x V logits in the compute dtype, plus float32 copies: the log-softmax output,
    its gradient in backward, and the upcast when the compute dtype is not float32."""
    fp32_copies = 2 + (1 if compute_bytes != 4 else 0)
    return work.group_size * work.completion_tokens * shape.vocab_size * (compute_bytes + 4 * fp32_copies)


def rollout_kv_bytes(shape: ModelShape, work: Workload, compute_bytes: int, num_gpus: int) -> int:
    """Keys and values of every layer for G rows of prompt + completion, for all of one
    GPU's prompt groups at once."""
    groups = math.ceil(work.prompts_per_step / num_gpus)
    rows = groups * work.group_size
    return rows * (work.prompt_tokens + work.completion_tokens) * 2 * shape.kv_dim * shape.num_layers * compute_bytes


def training_workload(work: Workload, strategy: str) -> Workload:
    """The workload the training forward sees: under an engine (fsdp, deepspeed) one model call
    per micro-batch, so the prompt is repeated for every completion."""
    return work if strategy == "ddp" else replace(work, share_prompt_prefix=False)


def estimate(shape: ModelShape, work: Workload, prec: Precision, strategy: str, num_gpus: int) -> Estimate:
    weights, grads, optim = model_state_bytes(shape, prec, strategy, num_gpus)
    work = training_workload(work, strategy)
    act = activation_bytes(shape, work, prec.compute_bytes)
    logits = logits_bytes(shape, work, prec.compute_bytes)
    kv = rollout_kv_bytes(shape, work, prec.compute_bytes, num_gpus)
    gathered = shape.total_params * (2 if prec.mixed else prec.param_bytes) if strategy == "fsdp" else 0
    peak = weights + optim + max(grads + act + logits, kv + gathered)
    return Estimate(strategy, num_gpus, weights, grads, optim, act, logits, kv, gathered, peak)


def lora_params(linear_shapes: list[tuple[int, int]], rank: int) -> int:
    """Trainable parameters of LoRA adapters (A: r x in, B: out x r) on these Linear layers."""
    return sum(rank * (i + o) for i, o in linear_shapes)
