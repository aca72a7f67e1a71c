"""Checkpoints that survive being killed: written to a temporary folder, then renamed.

A checkpoint ``output_dir/checkpoints/step-000050/`` holds the model (a normal Hugging
Face folder: full weights, or only the adapters with LoRA), the optimizer, the scheduler,
every RNG state and the trainer state. ``os.replace`` of a finished folder is atomic on
one filesystem, so a kill during a save leaves the previous checkpoint intact and at worst
a ``.tmp-*`` folder, which is ignored and cleaned on the next save.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "trainer_state.json"


def _ckpt_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(
    output_dir: str | Path,
    step: int,
    model: Any,
    tokenizer: Any,
    optimizer: Any,
    scheduler: Any,
    state: dict[str, Any],
    keep_last: int = 2,
    process_index: int = 0,
    barrier: Callable[[], None] = lambda: None,
    model_state: dict[str, Any] | None = None,
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Called by every process: each writes its own RNG state, the main one the rest.
    ``model_state`` / ``optimizer_state``: full state dicts gathered from a sharded model
    and optimizer (fgrpo/trainer/sharded.py), written instead of the objects' own."""
    root = _ckpt_root(output_dir)
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    main = process_index == 0
    if main:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    barrier()
    torch.save(rng_state(), tmp / f"rng-{process_index}.pt")
    barrier()
    if main:
        model.save_pretrained(tmp / "model", state_dict=model_state)
        tokenizer.save_pretrained(tmp / "model")
        torch.save(optimizer.state_dict() if optimizer_state is None else optimizer_state, tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / STATE_FILE).write_text(json.dumps({**state, "step": step}, indent=1))
        _fsync_tree(tmp)
        pause = float(os.environ.get("FGRPO_TEST_PAUSE_BEFORE_RENAME", "0"))  # tests kill -9 here
        if pause > 0:
            import time

            time.sleep(pause)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _prune(root, keep_last)
    barrier()
    return final


def _fsync_tree(folder: Path) -> None:
    for f in folder.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def _prune(root: Path, keep_last: int) -> None:
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    done = list_checkpoints(root.parent)
    for old in done[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (a folder counts once its state file is in it)."""
    root = _ckpt_root(output_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if (p / STATE_FILE).is_file())


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def load_model_weights(model: Any, folder: Path) -> None:
    """Load weights saved by ``save_pretrained`` into ``model`` (full or peft adapters)."""
    from safetensors.torch import load_file

    if (folder / "adapter_model.safetensors").is_file():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
        return
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(f))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    if isinstance(getattr(model, "_tied_weights_keys", None), dict):
        tied = set(model._tied_weights_keys)
    bad_missing = [k for k in missing if k not in tied and "lm_head" not in k]
    if bad_missing or unexpected:
        raise RuntimeError(f"{folder}: weights do not match the model (missing {bad_missing[:5]}, unexpected {unexpected[:5]})")


def load_checkpoint(folder: Path, model: Any, optimizer: Any, scheduler: Any, process_index: int = 0) -> dict[str, Any]:
    load_model_weights(model, folder / "model")
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=False))
    rng_file = folder / f"rng-{process_index}.pt"
    if rng_file.is_file():  # absent when resuming with more processes than saved
        set_rng_state(torch.load(rng_file, weights_only=False))
    return json.loads((folder / STATE_FILE).read_text())
