"""Faults lose nothing: non-finite updates are skipped, kill -9 during a save leaves the
previous checkpoint loadable, Ctrl-C saves and exits cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fgrpo.config import load_config
from fgrpo.trainer import train as train_module
from fgrpo.trainer.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from fgrpo.trainer.config import TrainConfig
from fgrpo.trainer.metrics_log import read_metrics

REPO = Path(__file__).resolve().parents[1]
FAST = ["sft_warmup_steps=20", "tensorboard=false", "prompts_per_step=2", "group_size=4", "eval_every=0"]


def test_non_finite_updates_are_skipped_then_training_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(TrainConfig, REPO / "configs" / "toy.yaml",
                      [*FAST, f"output_dir={tmp_path}", "max_steps=10", "save_every=1", "max_bad_steps=3"])
    real = train_module.core_algos.aggregate_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):  # steps 1-2 fine (2 groups each), then NaN from step 3 on
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 4 else loss

    monkeypatch.setattr(train_module.core_algos, "aggregate_loss", poisoned)
    with pytest.raises(train_module.TrainingStopped, match="non-finite"):
        train_module.train(cfg)
    rows = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "loss" in r]
    assert [r["update_skipped"] for r in rows] == [False, False, True, True, True]
    assert latest_checkpoint(tmp_path).name == "step-000002"  # the last good one, intact
    before = {k: v.clone() for k, v in _load_weights(tmp_path, "step-000002").items()}
    assert before  # loadable


def _load_weights(out: Path, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(out / "checkpoints" / name / "model" / "model.safetensors")


def _start(out: Path, extra: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fgrpo", "train", "--config", "configs/toy.yaml", *FAST, f"output_dir={out}", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )


def _wait_for(predicate, timeout: float = 300) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError("condition not reached")


def test_kill_during_save_leaves_previous_checkpoint_loadable(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start(out, ["max_steps=6", "save_every=2"], {"FGRPO_TEST_PAUSE_BEFORE_RENAME": "2"})
    try:
        # wait until the step-4 save is half done (temporary folder complete, not renamed)
        _wait_for(lambda: (out / "checkpoints" / "step-000002").is_dir()
                  and (out / "checkpoints" / ".tmp-step-000004" / "trainer_state.json").is_file())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [p.name for p in list_checkpoints(out)] == ["step-000002"]
    cfg = load_config(TrainConfig, REPO / "configs" / "toy.yaml", [*FAST, f"output_dir={out}"])
    run = train_module.setup(cfg, resume=True)  # loads step 2: weights, optimizer, scheduler, RNG
    assert run.start_step == 2
    resumed = subprocess.run([sys.executable, "-m", "fgrpo", "train", "--config", "configs/toy.yaml", *FAST,
                              f"output_dir={out}", "max_steps=6", "save_every=2", "--resume"],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [p.name for p in list_checkpoints(out)] == ["step-000004", "step-000006"]
    assert not list((out / "checkpoints").glob(".tmp-*"))


def test_ctrl_c_saves_and_exits_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start(out, ["max_steps=400", "save_every=1000"])
    _wait_for(lambda: (out / "metrics.jsonl").is_file() and '"reward/slate"' in (out / "metrics.jsonl").read_text())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    ckpt = latest_checkpoint(out)
    assert ckpt is not None
    logged = [r["step"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert int(ckpt.name.split("-")[1]) == logged[-1]  # the checkpoint is the last completed step
    assert "interrupted at step" in (out / "metrics.jsonl").read_text()
    model = train_module.load_model("builtin:tiny-llama")
    params = [p for p in model.parameters()]
    opt = torch.optim.AdamW(params)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    assert load_checkpoint(ckpt, model, opt, sched)["step"] == logged[-1]
