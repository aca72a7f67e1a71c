"""Checkpoints that survive being killed: written to a temporary folder, then renamed.

A checkpoint ``output_dir/checkpoints/step-000050/`` holds the model (a normal Hugging
Face folder: full weights, or only the adapters with LoRA), the optimizer, the scheduler,
every RNG state and the trainer state. ``os.replace`` of a finished folder is atomic on
one filesystem, so a kill during a save leaves the previous checkpoint intact and at worst
a ``.tmp-*`` folder, which is ignored and cleaned on the next save. Old checkpoints are
renamed to ``.tmp-*`` before they are deleted, so a half-deleted one never counts as complete.

``checkpoints/warmup/`` holds the model at the start of RL (after the SFT warm-up): full
weights even with LoRA, whose step checkpoints hold only the adapters. A resume rebuilds the
base, the KL reference and the adapters' initialization from it instead of re-running the
warm-up. It is written once and never pruned. Non-finite weights are never written.
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

from fgrpo.models.answer_format import write_answer_format

STATE_FILE = "trainer_state.json"
WARMUP = "warmup"  # checkpoints/warmup: the model at the start of RL


class NonFiniteWeights(ValueError):
    """Weights with NaN or inf values: refused by every save, so no checkpoint or final model holds them."""


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
    answer_format: dict[str, Any] | None = None,
) -> Path:
    """Called by every process: each writes its own RNG state, the main one the rest.
    ``model_state`` / ``optimizer_state``: full state dicts gathered from a sharded model
    and optimizer (fgrpo/trainer/sharded.py), written instead of the objects' own.
    ``answer_format``: the model folder's ``fgrpo.json`` (None: none, e.g. LoRA adapters)."""
    root = _ckpt_root(output_dir)
    if process_index == 0:
        check_finite(model.state_dict() if model_state is None else model_state, f"checkpoint of step {step}")

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp / "model", state_dict=model_state)
        tokenizer.save_pretrained(tmp / "model")
        if answer_format is not None:
            write_answer_format(tmp / "model", answer_format)
        torch.save(optimizer.state_dict() if optimizer_state is None else optimizer_state, tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / STATE_FILE).write_text(json.dumps({**state, "step": step}, indent=1))

    final = _save_folder(root, f"step-{step:06d}", write, process_index, barrier)
    if process_index == 0:
        _prune(root, keep_last)
    barrier()
    return final


def save_warmup(
    output_dir: str | Path, model: Any, tokenizer: Any, state: dict[str, Any],
    process_index: int = 0, barrier: Callable[[], None] = lambda: None,
) -> Path:
    """``checkpoints/warmup``: the full weights (no adapters yet) and every process's RNG
    state at the start of RL. Called by every process, like save_checkpoint."""
    if process_index == 0:
        check_finite(model.state_dict(), "the warmed-up model")

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp / "model")
        tokenizer.save_pretrained(tmp / "model")
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))

    return _save_folder(_ckpt_root(output_dir), WARMUP, write, process_index, barrier)


def warmup_checkpoint(output_dir: str | Path) -> Path | None:
    folder = _ckpt_root(output_dir) / WARMUP
    return folder if (folder / STATE_FILE).is_file() else None


def load_warmup(folder: Path, model: Any, process_index: int = 0) -> dict[str, Any]:
    """The warmed-up weights into ``model`` (before LoRA is added) and this process's RNG
    state (it seeds the adapters' initialization); returns the state written with them."""
    load_model_weights(model, folder / "model")
    rng_file = folder / f"rng-{process_index}.pt"
    if rng_file.is_file():
        set_rng_state(torch.load(rng_file, weights_only=False))
    return json.loads((folder / STATE_FILE).read_text())


def _save_folder(
    root: Path, name: str, write: Callable[[Path], None], process_index: int, barrier: Callable[[], None]
) -> Path:
    """``root/name`` written as ``root/.tmp-name`` (RNG states by every process, the rest by
    ``write`` on the main one), fsynced, then renamed into place."""
    final, tmp = root / name, root / f".tmp-{name}"
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
        write(tmp)
        fsync_tree(tmp)
        pause = float(os.environ.get("FGRPO_TEST_PAUSE_BEFORE_RENAME", "0"))  # tests kill -9 here
        if pause > 0:
            import time

            time.sleep(pause)
        publish(tmp, final)
    return final


def publish(tmp: Path, final: Path) -> None:
    """Rename the finished folder ``tmp`` to ``final``. An existing ``final`` is first
    renamed aside (a directory cannot be replaced in one rename) and deleted only after."""
    aside = final.with_name(f".tmp-old-{final.name}")
    if aside.exists():
        shutil.rmtree(aside)
    if final.exists():
        os.replace(final, aside)
    os.replace(tmp, final)
    shutil.rmtree(aside, ignore_errors=True)


def check_finite(state: dict[str, Any], what: str) -> None:
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise NonFiniteWeights(f"{what}: non-finite values in {bad[:5]}; not saved")


def fsync_tree(folder: Path) -> None:
    for f in folder.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def _prune(root: Path, keep_last: int) -> None:
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    done = list_checkpoints(root.parent)
    for old in done[:-keep_last]:
        # renamed first: a kill during rmtree must not leave a partial folder named step-*
        # whose state file survived, which would count as complete
        doomed = old.with_name(f".tmp-deleting-{old.name}")
        os.replace(old, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


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
