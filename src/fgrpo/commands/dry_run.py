"""``fgrpo train --dry-run``: build everything a run needs that a CPU without the weights
can build, print what a step would take per GPU, and train nothing.

Checked: the train config (already, by loading it); an accelerate config file, read with
accelerate's own loader and compared with the train config; the launch the trainer would
accept; the data (loaded and validated row by row when the folder is here, reported
missing otherwise); the tokenizer and prompt lengths when the model is local; the model
built on the meta device from its config.json or a preset (fgrpo/models/presets.py),
parameters counted; then the per-GPU memory estimate (fgrpo/trainer/memory.py) for the
chosen strategy and a table for all three.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fgrpo.commands.inputs import train_valid
from fgrpo.config import ConfigError
from fgrpo.config.commands import TrainConfig
from fgrpo.trainer import memory
from fgrpo.trainer.launch import precision_warnings

DEFAULT_PROMPT_TOKENS = 1024
MEASURED_PROMPTS = 5000  # training prompts tokenized to find the longest (and those over the context)
RUNS_IN_TRAINER = {"ddp": "runs (gradient all-reduce)", "fsdp": "runs (accelerate FSDP2; run on CPU only)",
                   "deepspeed": "runs (accelerate DeepSpeed; 1 CPU process only)"}


@dataclass
class LaunchPlan:
    strategy: str = "ddp"
    num_gpus: int = 1
    source: str = "defaults (one GPU, data parallel)"
    mixed_precision: str | None = None  # what the accelerate file asks for
    problems: list[str] = field(default_factory=list)


def plan_from_accelerate_config(path: str | Path, cfg: TrainConfig) -> LaunchPlan:
    """Strategy, GPU count and problems of an accelerate config file, read by accelerate."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    try:
        acc = load_config_from_file(str(path))
    except (OSError, ValueError, TypeError) as e:
        raise ConfigError(f"{path}: not an accelerate config accelerate can read ({e})") from e
    kind = acc.distributed_type
    plan = LaunchPlan(num_gpus=max(1, int(acc.num_processes)), source=f"{path} ({kind.value})",
                      mixed_precision=str(acc.mixed_precision or "no"))
    if kind in (DistributedType.MULTI_GPU, DistributedType.MULTI_CPU, DistributedType.NO):
        plan.strategy = "ddp"
    elif kind == DistributedType.FSDP:
        plan.strategy = "fsdp"
        reshard = acc.fsdp_config.get("fsdp_reshard_after_forward", acc.fsdp_config.get("fsdp_sharding_strategy", True))
        if reshard not in (True, "FULL_SHARD", "true"):
            plan.problems.append(f"{path}: FSDP without full sharding ({reshard!r}); the estimate is for full shard")
    elif kind == DistributedType.DEEPSPEED:
        plan.strategy = "deepspeed"
        stage = int(acc.deepspeed_config.get("zero_stage", -1))
        if stage != 2:
            plan.problems.append(f"{path}: DeepSpeed zero_stage {stage}; the estimate is for ZeRO-2")
    else:
        raise ConfigError(f"{path}: distributed_type {kind.value} is not one fgrpo knows (MULTI_GPU, FSDP, DEEPSPEED)")
    if plan.mixed_precision not in ("no", cfg.mixed_precision):  # the trainer would refuse this launch
        raise ConfigError(
            f"{path} asks for mixed_precision={plan.mixed_precision} but the train config has "
            f"mixed_precision={cfg.mixed_precision!r}; make them agree"
        )
    return plan


def model_shape(model: Any, config: Any, trainable: int) -> memory.ModelShape:
    """The estimator's view of a (meta-device) model."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    unit_names = set(getattr(model, "_no_split_modules", None) or [])
    units = [sum(p.numel() for p in m.parameters()) for m in model.modules() if type(m).__name__ in unit_names]
    embedding = model.get_input_embeddings().weight.numel()
    return memory.ModelShape(
        total_params=sum(p.numel() for p in model.parameters()),
        trainable_params=trainable,
        num_layers=text.num_hidden_layers,
        hidden_size=text.hidden_size,
        q_dim=heads * head_dim,
        kv_dim=kv_heads * head_dim,
        intermediate_size=text.intermediate_size,
        vocab_size=text.vocab_size,
        largest_unit_params=max([embedding, *units]),
        largest_tensor_params=max(p.numel() for p in model.parameters()),
    )


def lora_linear_shapes(model: Any, target_modules: str) -> list[tuple[int, int]]:
    """(in, out) of the Linear layers LoRA would adapt: peft's 'all-linear' skips the output head."""
    import torch

    names = None if target_modules == "all-linear" else {m.strip() for m in target_modules.split(",") if m.strip()}
    head = model.get_output_embeddings()
    out = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or module is head:
            continue
        if names is None or name.split(".")[-1] in names:
            out.append((module.in_features, module.out_features))
    return out


def _local_model(name: str) -> bool:
    from fgrpo.models.smollm2 import CACHE_SUBDIR, SMOLLM2_ALIASES, _is_complete, default_cache_dir
    from fgrpo.models.tiny import TINY_LLAMA_ID

    if name == TINY_LLAMA_ID or Path(name).is_dir():
        return True
    return name in SMOLLM2_ALIASES and _is_complete(default_cache_dir() / CACHE_SUBDIR)


def _gib(x: float) -> str:
    return f"{x / memory.GIB:.1f}"


def dry_run(
    cfg: TrainConfig,
    accelerate_config: str | Path | None = None,
    num_gpus: int | None = None,
    strategy: str | None = None,
    prompt_tokens: int | None = None,
    gpu_memory_gib: float = 80.0,
    echo: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Print the report; return its numbers (for tests and tools). Raises ConfigError for
    what no run could get past (an unreadable accelerate file, an unknown architecture)."""
    from fgrpo.models.presets import architecture_config, build_empty_model

    echo(f"fgrpo train --dry-run: {cfg.model} on {cfg.dataset}; nothing will be trained")
    echo(f"config: ok (G={cfg.group_size}, prompts_per_step={cfg.prompts_per_step}, max_new_tokens={cfg.max_new_tokens}, "
         f"dtype={cfg.dtype}, mixed_precision={cfg.mixed_precision}, gradient_checkpointing={cfg.gradient_checkpointing}, "
         f"share_prompt_prefix={cfg.share_prompt_prefix}, use_lora={cfg.use_lora})")
    notes: list[str] = list(precision_warnings(cfg))

    # launch
    plan = plan_from_accelerate_config(accelerate_config, cfg) if accelerate_config else LaunchPlan()
    if strategy:
        strategy = memory.STRATEGY_ALIASES.get(strategy, strategy)
        plan.strategy, plan.source = strategy, f"{plan.source}; strategy from --strategy"
    if num_gpus:
        plan.num_gpus, plan.source = num_gpus, f"{plan.source}; GPUs from --num-gpus"
    if plan.strategy not in memory.STRATEGIES:
        raise ConfigError(f"strategy {plan.strategy!r}: one of {', '.join(memory.STRATEGIES)}")
    echo(f"launch: {plan.strategy} on {plan.num_gpus} GPU(s), from {plan.source}; trainer: {RUNS_IN_TRAINER[plan.strategy]}")
    if cfg.prompts_per_step < plan.num_gpus:
        notes.append(f"prompts_per_step={cfg.prompts_per_step} < {plan.num_gpus} GPUs: some GPUs would get no prompt group")
    elif cfg.prompts_per_step % plan.num_gpus:
        notes.append(f"prompts_per_step={cfg.prompts_per_step} does not divide over {plan.num_gpus} GPUs (uneven shares)")

    # data
    train: list[Any] = []
    if cfg.dataset == "toy" or Path(cfg.dataset).is_dir():
        train, valid = train_valid(cfg)  # a malformed row raises DataError, naming file and line
        echo(f"data: {len(train)} train / {len(valid)} valid examples from {cfg.dataset} (every row validated)")
    else:
        notes.append(f"dataset folder {cfg.dataset} not found here: a real run would stop at loading it")
        echo(f"data: NOT FOUND: {cfg.dataset} (make it with fgrpo prepare)")

    # prompt length: given, else measured with the local tokenizer, else the manifest's, else assumed
    source = "--prompt-tokens"
    measured: list[tuple[int, Any]] = []  # (prompt tokens, example), for the context check
    if prompt_tokens is None and train and _local_model(cfg.model):
        from fgrpo.format.prompts import encode_prompt
        from fgrpo.models.loading import load_tokenizer

        tok = load_tokenizer(cfg.model)
        measured = [(len(encode_prompt(tok, ex, cfg.max_slate, cfg.max_rank)), ex) for ex in train[:MEASURED_PROMPTS]]
        lengths = [n for n, _ in measured]
        prompt_tokens = max(lengths)
        source = f"longest of {len(lengths)} training prompts (mean {sum(lengths) / len(lengths):.0f}), {cfg.model} tokenizer"
    manifest = Path(cfg.dataset) / "manifest.json"
    if prompt_tokens is None and manifest.is_file():
        lengths_by_split = json.loads(manifest.read_text()).get("prompt_lengths") or {}
        if "train" in lengths_by_split:
            tok_name = json.loads(manifest.read_text()).get("config", {}).get("prompt_tokenizer")
            prompt_tokens = int(lengths_by_split["train"]["max"])
            source = f"{manifest} (max train prompt, {tok_name} tokenizer: another model's count)"
    if prompt_tokens is None:
        prompt_tokens = DEFAULT_PROMPT_TOKENS
        source = "assumed: tokenizer not available offline; pass --prompt-tokens N"
    echo(f"prompt: {prompt_tokens} tokens ({source}); completion: {cfg.max_new_tokens} tokens (max_new_tokens)")

    # model, without weights
    try:
        config, where = architecture_config(cfg.model, cfg.tiny_hidden_size, cfg.tiny_num_layers)
    except LookupError as e:
        raise ConfigError(f"dry run: {e}") from e
    t0 = time.perf_counter()
    model = build_empty_model(config)
    trainable = sum(p.numel() for p in model.parameters())
    if cfg.use_lora:
        trainable = memory.lora_params(lora_linear_shapes(model, cfg.lora_target_modules), cfg.lora_r)
    shape = model_shape(model, config, trainable)
    from fgrpo.data.splits import model_context

    context = cfg.prompt_context or model_context(config)
    over_context = context is not None and prompt_tokens + cfg.max_new_tokens > context
    if over_context:
        over = [ex for n, ex in measured if n + cfg.max_new_tokens > context]
        first = f"; first: {over[0].source or over[0].id}" if over else ""
        counted = f"{len(over)} of {len(measured)} measured training prompts" if measured else "the prompt"
        action = ("a real run would stop (prompt_overflow=error)" if cfg.prompt_overflow == "error"
                  else "a real run would skip them (prompt_overflow=skip)")
        notes.append(f"{counted} + max_new_tokens={cfg.max_new_tokens} exceed the model's context of {context} tokens"
                     f"{first}: {action}")
        echo(f"context: {context} tokens: prompt + completion ({prompt_tokens + cfg.max_new_tokens}) does NOT fit")
    elif context is not None:
        echo(f"context: {context} tokens: prompt + completion ({prompt_tokens + cfg.max_new_tokens}) fits")
    echo(f"model: {type(model).__name__} from {where}, built on the meta device in {time.perf_counter() - t0:.1f} s: "
         f"{shape.total_params:,} parameters, {shape.trainable_params:,} trained"
         f"{f' (LoRA r={cfg.lora_r}, {cfg.lora_target_modules})' if cfg.use_lora else ''}, {shape.num_layers} layers")

    # memory
    work = memory.Workload(cfg.group_size, cfg.prompts_per_step, prompt_tokens, cfg.max_new_tokens,
                           cfg.share_prompt_prefix, cfg.gradient_checkpointing)
    prec = memory.precision_of(cfg.dtype, cfg.mixed_precision, cfg.use_lora)
    chosen = memory.estimate(shape, work, prec, plan.strategy, plan.num_gpus)
    numerics = "bf16 autocast over float32 weights" if prec.mixed else f"{cfg.dtype} weights and compute"
    echo(f"memory per GPU, {plan.strategy} on {plan.num_gpus} GPU(s), {numerics} (estimate, GiB):")
    labels = {"weights": "weights", "gradients": "gradients", "optimizer": "AdamW states",
              "activations": f"activations, one group ({memory.training_tokens(memory.training_workload(work, plan.strategy))} tokens"
                             f"{', checkpointed' if work.gradient_checkpointing else ''})",
              "logits": "logits + log-softmax (+ grad)", "rollout_kv": "rollout KV cache",
              "rollout_weights": "weights gathered for the rollout (FSDP)", "peak": "PEAK"}
    for key, gib in chosen.parts_gib().items():
        echo(f"  {labels[key]:<52} {gib:8.2f}")
    table = {s: memory.estimate(shape, work, prec, s, plan.num_gpus) for s in memory.STRATEGIES}
    echo(f"all strategies on {plan.num_gpus} GPU(s) (GiB; fits = peak <= {gpu_memory_gib:g} GiB):")
    echo("| strategy | weights | grads | AdamW | activations + logits | rollout KV (+ gathered weights) | peak | fits | fgrpo trainer |")
    echo("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for s, e in table.items():
        fits = "no (context)" if over_context else "yes" if e.peak <= gpu_memory_gib * memory.GIB else "no"
        echo(f"| {s} | {_gib(e.weights)} | {_gib(e.gradients)} | {_gib(e.optimizer)} | {_gib(e.activations + e.logits)} | "
             f"{_gib(e.rollout_kv + e.rollout_weights)} | **{_gib(e.peak)}** | {fits} | {RUNS_IN_TRAINER[s]} |")
    for note in plan.problems + notes:
        echo(f"note: {note}")
    echo("dry run done: nothing was trained")
    return {"plan": plan, "shape": shape, "workload": work, "precision": prec, "estimate": chosen, "table": table,
            "prompt_tokens": prompt_tokens, "notes": plan.problems + notes, "context": context, "over_context": over_context}
