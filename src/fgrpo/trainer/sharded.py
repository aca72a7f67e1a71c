"""FSDP and DeepSpeed launches: what the trainer does differently when an engine owns the
model and optimizer (``Accelerator.prepare``). The data parallel path never comes here.

- The training forward is ONE model call per micro-batch: the prompt repeated for each
  of the G completions (``share_prefix=False`` in fgrpo/trainer/forward.py). The
  shared-prefix forward calls the model twice per backward (prompt, then completions on
  its cache); FSDP2 would re-gather every layer for the second call and fire the
  post-backward reduce-scatter per call, and DeepSpeed's engine counts forwards. One
  call keeps each engine on the path it is built and tested for, at the price of G - 1
  extra prompt passes per group (the memory estimate counts them).
- Rollouts and validation sample a different number of tokens on each process (its own
  prompts stop at their own lengths). FSDP all-gathers a layer inside every forward, so
  processes making different numbers of forwards would wait on each other forever.
  :func:`full_params` gathers every layer once, keeps it gathered for the whole rollout
  (no collective inside a forward), and reshards afterwards. ZeRO-1/2 keep the parameters
  replicated, so sampling needs nothing there.
- Gradients are reduced by the engine inside backward; clipping goes through
  ``Accelerator.clip_grad_norm_`` (DeepSpeed clips inside its own step, with the
  accelerate file's ``gradient_clipping``).
- Checkpoints hold full (unsharded) state dicts, gathered by every process and written by
  the main one, so a checkpoint is the same Hugging Face folder as a data parallel one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from fgrpo.trainer.launch import SHARDED, LaunchError


def make_accelerator(strategy: str) -> Any:
    """The Accelerator for ``strategy`` (from fgrpo.trainer.launch.check_launch)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin


    if strategy == "deepspeed" and not torch.cuda.is_available():
        raise LaunchError(
            "DeepSpeed launch on a machine without CUDA: accelerate enables DeepSpeed on GPUs only (and "
            "needs `pip install deepspeed`); every process would train a full copy. See docs/scale-out.md"
        )
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    if strategy == "fsdp" and accelerator.distributed_type != DistributedType.FSDP:
        # accelerate 1.15 turns an FSDP launch into FSDP only on GPU-like devices; on CPU it
        # stays MULTI_CPU and every process would train a full copy. Its FSDP2 code is
        # device-agnostic and torch's fully_shard shards over a CPU mesh with gloo, so on CPU
        # the FSDP state is set here, from the launcher's FSDP_* environment as accelerate
        # would: the same prepare path then runs, which is how it is tested without GPUs.
        plugin = FullyShardedDataParallelPlugin()
        if accelerator.distributed_type != DistributedType.MULTI_CPU or plugin.fsdp_version != 2:
            raise LaunchError(
                f"FSDP launch, but accelerate set up {accelerator.distributed_type.value} (fsdp_version "
                f"{plugin.fsdp_version}); on a machine without GPUs fgrpo runs FSDP2 only (fsdp_version: 2) "
                "with several processes (--num_processes N)"
            )
        from accelerate.state import PartialState

        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = plugin
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP  # as accelerate does (state.py)
    if strategy == "deepspeed" and accelerator.distributed_type != DistributedType.DEEPSPEED:
        raise LaunchError(f"DeepSpeed launch, but accelerate set up {accelerator.distributed_type.value}")
    return accelerator


def prepare(accelerator: Any, strategy: str, model: Any, optimizer: Any, group_size: int) -> tuple[Any, Any]:
    """Model and optimizer handed to the engine (``Accelerator.prepare``)."""
    if strategy == "deepspeed":
        # DeepSpeed checks train_batch_size = micro-batch x accumulation x processes, and
        # accelerate takes the micro-batch from a dataloader, which the trainer does not
        # have: one micro-batch is one prompt group of G sequences
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = group_size
    return accelerator.prepare(model, optimizer)


@contextmanager
def full_params(model: Any, strategy: str) -> Iterator[None]:
    """Under FSDP, every layer gathered for the body of the block (see the module doc)."""
    if strategy != "fsdp":
        yield
        return
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    # each unit's own setting (decoder layers reshard, the root and the embedding/head unit
    # do not), restored afterwards; read from FSDP's state, as torch offers no getter
    reshard = {m: any(g._reshard_after_forward for g in m._get_fsdp_state()._fsdp_param_groups) for m in units}
    for m in units:
        m.unshard()
        m.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        for m in units:
            m.set_reshard_after_forward(reshard[m], recurse=False)
            m.reshard()


def clip_grad_norm(accelerator: Any, model: Any, max_norm: float) -> torch.Tensor:
    """The gradient norm before clipping, as a plain scalar tensor, clipped by the engine.
    FSDP2 returns it as a DTensor (made whole here, so every process logs the global norm);
    DeepSpeed clipped inside its own step and may not report it: NaN then."""
    norm = accelerator.clip_grad_norm_(model.parameters(), max_norm)
    if norm is None:
        return torch.tensor(math.nan)
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return torch.tensor(float(norm))


def full_state_dicts(run: Any) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any] | None]:
    """(model, optimizer) full state dicts on the main process, for a checkpoint; (None,
    None) when the trainer is data parallel (the model and optimizer are saved as they are).
    Every process must call it: the engine gathers the shards."""
    if run.strategy not in SHARDED:
        return None, None
    model_sd = run.accelerator.get_state_dict(run.model)
    for name in tied_names(run.accelerator.unwrap_model(run.model)):  # gathered as separate copies;
        model_sd.pop(name, None)  # save_pretrained writes a tied weight once
    if run.strategy == "deepspeed":
        # ZeRO-1/2: the module is replicated (in bf16 under mixed precision: the float32 master
        # weights live in DeepSpeed's partitioned optimizer, which is not written)
        return model_sd, {}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    # keyed by parameter name (not index): the layout a sharded resume reads back
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return model_sd, get_optimizer_state_dict(run.model, run.optimizer.optimizer, options=options)


def tied_names(model: torch.nn.Module) -> list[str]:
    """Names under which an already listed parameter appears again (a head tied to the embedding)."""
    first: dict[int, str] = {}
    return [n for n, p in model.named_parameters(remove_duplicate=False) if first.setdefault(id(p), n) != n]


def resume_fsdp(run: Any, folder: Path) -> dict[str, Any]:
    """Optimizer, scheduler and RNG states of a checkpoint written under FSDP (its weights
    were loaded into the full model before sharding); returns the trainer state."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    from fgrpo.trainer.checkpoint import STATE_FILE, set_rng_state

    state = json.loads((folder / STATE_FILE).read_text())
    if state.get("launch") != "fsdp":
        raise LaunchError(f"{folder} was written by a {state.get('launch', 'data parallel')} run, whose optimizer "
                          "state an FSDP run cannot read; resume it the way it was launched")
    # the full AdamW state is read by the main process only; torch sends each process its shards
    full = torch.load(folder / "optimizer.pt", weights_only=False) if run.accelerator.is_main_process else {}
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_optimizer_state_dict(run.model, run.optimizer.optimizer, full, options=options)
    run.scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=False))
    rng_file = folder / f"rng-{run.accelerator.process_index}.pt"
    if rng_file.is_file():
        set_rng_state(torch.load(rng_file, weights_only=False))
    return state
