"""What ``fgrpo train`` does with the way it was launched, decided before anything is built.

The trainer is data parallel by hand: every process holds the whole model and optimizer,
takes its share of a step's prompt groups, and all-reduces (averages) the gradients after
backward, the update DDP would make. It does not wrap the model in DDP (the shared-prefix
forward calls the model twice per backward, which DDP's reducer rejects), and it does not
shard anything. So:

- plain ``fgrpo train``, ``torchrun``, ``accelerate launch --multi_gpu`` (and the
  ``configs/accelerate/ddp.yaml`` file): run, one process or several;
- an FSDP, DeepSpeed or Megatron launch: refused here with a message. accelerate itself
  would not stop it: on a machine without GPUs ``Accelerator()`` quietly reports no
  distributed type for an FSDP launch, and every GPU would train a full unsharded copy;
- ``accelerate launch --cpu --num_processes N``: refused, because accelerate's CPU
  launcher starts ONE process unless it goes through mpirun;
- a launcher's ``--mixed_precision`` must agree with the config's ``mixed_precision``
  (the trainer applies it itself: it never calls ``Accelerator.prepare``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from fgrpo.config import ConfigError

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
    if strategy in ("fsdp", "deepspeed", "megatron_lm"):
        what = {"fsdp": "FSDP", "deepspeed": f"DeepSpeed ZeRO-{env.get('ACCELERATE_DEEPSPEED_ZERO_STAGE', '?')}",
                "megatron_lm": "Megatron-LM"}[strategy]
        raise LaunchError(
            f"launched with {what}, but fgrpo's trainer does not shard parameters, gradients or optimizer "
            "states (it would train a full copy per process). Launch data parallel instead "
            "(accelerate launch --config_file configs/accelerate/ddp.yaml, or torchrun), or estimate what "
            f"{what} would need with: fgrpo train --config ... --dry-run --accelerate-config FILE. See docs/scale-out.md."
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
