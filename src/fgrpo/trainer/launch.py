"""What ``fgrpo train`` does with the way it was launched, decided before anything is built.

- plain ``fgrpo train``, ``torchrun``, ``accelerate launch --multi_gpu`` (and the
  ``configs/accelerate/ddp.yaml`` file): data parallel by hand. Every process holds the
  whole model and optimizer, takes its share of a step's prompt groups, and all-reduces
  (averages) the gradients after backward, the update DDP would make. No DDP wrapper:
  the shared-prefix forward calls the model twice per backward, which DDP's reducer rejects;
- an FSDP or DeepSpeed launch (``configs/accelerate/fsdp.yaml``,
  ``deepspeed_zero2.yaml``): the model and optimizer go through ``Accelerator.prepare``
  and the engine shards and reduces (fgrpo/trainer/sharded.py). Full fine-tuning only:
  with LoRA the trained state is a few MB, shard nothing and launch data parallel;
- a Megatron-LM launch: refused (nothing in fgrpo splits layers or tensors);
- ``accelerate launch --cpu --num_processes N``: refused, because accelerate's CPU
  launcher starts ONE process unless it goes through mpirun;
- a launcher's ``--mixed_precision`` must agree with the config's ``mixed_precision``
  (the trainer applies it itself with autocast; under FSDP or DeepSpeed the engine's
  bf16 policy, set from the same launcher value, comes on top).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from fgrpo.config import ConfigError

SHARDED = ("fsdp", "deepspeed")  # launches whose engine owns the model and optimizer (Accelerator.prepare)
_WORLD_SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


class LaunchError(ConfigError):
    """The trainer cannot run the way it was launched (the message says what to do instead)."""


def launch_strategy(env: Mapping[str, str] | None = None) -> str:
    """'fsdp', 'deepspeed', 'megatron_lm' (requested through accelerate's environment),
    'ddp' (several processes, no sharding) or 'single'."""
    env = os.environ if env is None else env
    for name, var in (("fsdp", "ACCELERATE_USE_FSDP"), ("deepspeed", "ACCELERATE_USE_DEEPSPEED"),
                      ("megatron_lm", "ACCELERATE_USE_MEGATRON_LM")):
        if env.get(var, "false").lower() in ("1", "true", "yes"):
            return name
    world = max(int(env.get(v, "1") or 1) for v in _WORLD_SIZE_VARS)
    return "ddp" if world > 1 else "single"


def check_launch(cfg: Any, env: Mapping[str, str] | None = None) -> str:
    """The strategy the trainer will run (see the module doc), or LaunchError."""
    env = os.environ if env is None else env
    strategy = launch_strategy(env)
    if strategy == "megatron_lm":
        raise LaunchError(
            "launched with Megatron-LM, which fgrpo's trainer does not support (it splits no layer or tensor). "
            "Launch with configs/accelerate/ddp.yaml, fsdp.yaml or deepspeed_zero2.yaml instead. See docs/scale-out.md."
        )
    if strategy in SHARDED:
        what = "FSDP" if strategy == "fsdp" else f"DeepSpeed ZeRO-{env.get('ACCELERATE_DEEPSPEED_ZERO_STAGE', '?')}"
        if cfg.use_lora:
            raise LaunchError(
                f"launched with {what} and use_lora=true: fgrpo shards full fine-tuning only. LoRA's trained state "
                "is a few MB, so launch data parallel (configs/accelerate/ddp.yaml) or set use_lora=false"
            )
        if strategy == "deepspeed" and env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2") not in ("1", "2"):
            raise LaunchError(
                f"launched with {what}: fgrpo supports ZeRO stages 1 and 2 (parameters replicated, so every "
                "process can sample rollouts on its own); use configs/accelerate/fsdp.yaml to shard parameters too"
            )
    world_known = any(v in env for v in _WORLD_SIZE_VARS)
    if (strategy == "single" and env.get("ACCELERATE_USE_CPU", "").lower() == "true"
            and "MASTER_ADDR" in env and not world_known):
        raise LaunchError(
            "accelerate launch --cpu with --num_processes > 1 starts one process (accelerate runs several "
            "CPU processes only through mpirun). Use: accelerate launch --multi_gpu --num_processes N "
            "-m fgrpo train ... (torchrun underneath, gloo on CPU), or torchrun --nproc_per_node N. "
            "(If you meant one process, unset MASTER_ADDR.)"
        )
    launcher_mp = env.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    if launcher_mp not in ("no", "") and launcher_mp != cfg.mixed_precision:
        raise LaunchError(
            f"the launcher asks for mixed_precision={launcher_mp} but the train config has "
            f"mixed_precision={cfg.mixed_precision!r}; the trainer applies the config's setting itself, so set "
            f"mixed_precision={launcher_mp} in the config (if supported) or launch with --mixed_precision no"
        )
    return strategy


def enable_autocast(model: torch.nn.Module, dtype: torch.dtype, device_type: str) -> None:
    """Run every forward of ``model`` under ``torch.autocast``: weights stay in their dtype
    (float32 master weights, updated exactly), matmuls run in ``dtype``.

    Hooks rather than a patched ``forward``: a deep copy (the KL reference model) keeps
    hooks that do not point back at the original, while a patched bound ``forward`` would
    silently run the original model. Gradient checkpointing replays a layer under the
    autocast state it was first run with (torch.utils.checkpoint records it).
    """
    stack: list[Any] = []

    def enter(module: torch.nn.Module, args: Any) -> None:
        ctx = torch.autocast(device_type=device_type, dtype=dtype)
        ctx.__enter__()
        stack.append(ctx)

    def leave(module: torch.nn.Module, args: Any, output: Any) -> None:
        if stack:
            stack.pop().__exit__(None, None, None)

    model.register_forward_pre_hook(enter)
    model.register_forward_hook(leave, always_call=True)  # also when the forward raises


def precision_warnings(cfg: Any) -> list[str]:
    """Settings that train, but not as the user probably expects."""
    out = []
    if cfg.dtype in ("bfloat16", "float16") and not cfg.use_lora:
        out.append(
            f"dtype={cfg.dtype} with full fine-tuning: AdamW updates {cfg.dtype} weights in place, and a step "
            f"smaller than ~0.4% of a weight (bf16's resolution; lr {cfg.learning_rate:g} is far below) rounds "
            "away. Prefer dtype=float32 with mixed_precision=bf16 (float32 master weights, bf16 matmuls)."
        )
    if cfg.mixed_precision == "bf16" and cfg.dtype != "float32":
        out.append(f"mixed_precision=bf16 over dtype={cfg.dtype} weights changes nothing: they already compute in half precision")
    return out
