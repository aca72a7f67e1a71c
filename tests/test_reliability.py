"""Faults lose nothing: non-finite updates are skipped, kill -9 during a save leaves the
previous checkpoint loadable, Ctrl-C saves and exits cleanly."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fgrpo.commands import train as train_command
from fgrpo.config import load_config
from fgrpo.config.commands import TrainConfig
from fgrpo.models.loading import load_model
from fgrpo.trainer import train as train_module
from fgrpo.trainer.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
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
    with pytest.raises(train_command.TrainingStopped, match="non-finite"):
        train_command.train(cfg)
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
    run = train_command.setup(cfg, resume=True)  # loads step 2: weights, optimizer, scheduler, RNG
    assert run.start_step == 2
    resumed = subprocess.run([sys.executable, "-m", "fgrpo", "train", "--config", "configs/toy.yaml", *FAST,
                              f"output_dir={out}", "max_steps=6", "save_every=2", "--resume"],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [p.name for p in list_checkpoints(out)] == ["step-000004", "step-000006"]
    assert not list((out / "checkpoints").glob(".tmp-*"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_saves_and_exits_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    """An interrupted run saves, says so and exits 128 + the signal, not 0."""
    out = tmp_path / "run"
    proc = _start(out, ["max_steps=400", "save_every=1000"])
    _wait_for(lambda: (out / "metrics.jsonl").is_file() and '"reward/slate"' in (out / "metrics.jsonl").read_text())
    proc.send_signal(sig)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err[-2000:]
    assert "training interrupted" in err and "done:" not in stdout
    ckpt = latest_checkpoint(out)
    assert ckpt is not None
    logged = [r["step"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert int(ckpt.name.split("-")[1]) == logged[-1]  # the checkpoint is the last completed step
    assert "interrupted at step" in (out / "metrics.jsonl").read_text()
    model = load_model("builtin:tiny-llama")
    params = [p for p in model.parameters()]
    opt = torch.optim.AdamW(params)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    assert load_checkpoint(ckpt, model, opt, sched)["step"] == logged[-1]


# ------------------------------------------------------------------ resume exactness and faults
# In-process runs stand for a kill -9 by raising Killed at a chosen point (the finally blocks
# that run then write no metrics rows or checkpoints); the slow test at the end uses real ones.

TIMINGS = train_module.TIMING_KEYS


class Killed(BaseException):
    """A kill at a chosen point of an in-process run."""


def _cfg(out: Path, *extra: str) -> TrainConfig:
    return load_config(TrainConfig, REPO / "configs" / "toy.yaml", [*FAST, "torch_threads=1", f"output_dir={out}", *extra])


def _kill_when(monkeypatch: pytest.MonkeyPatch, name: str, when) -> object:
    """Make train_module.<name> raise Killed when ``when(*args)``; returns the real function."""
    real = getattr(train_module, name)

    def wrapper(*args, **kwargs):
        if when(*args):
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, name, wrapper)
    return real


def _rows(out: Path) -> list[dict]:
    """metrics.jsonl step rows (warm-up and RL) without the wall-clock timings."""
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in read_metrics(out / "metrics.jsonl")]


def _assert_same_weights(a: Path, b: Path) -> None:
    from safetensors.torch import load_file

    wa, wb = load_file(a / "model" / "model.safetensors"), load_file(b / "model" / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k  # bit for bit


@pytest.mark.parametrize("extra", [["use_lora=true", "lora_r=4", "kl_beta=0.1"], ["kl_beta=0.1"]], ids=["lora-kl", "full-kl"])
def test_resume_after_warmup_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str]) -> None:
    """Items 1 and 2: a run resumed after the SFT warm-up equals the uninterrupted one: with
    LoRA the adapters sit on the warmed-up base (not the untrained one), and the KL reference
    is the warmed-up model (not the random init)."""
    common = ["max_steps=4", "save_every=2", *extra]
    train_command.train(_cfg(tmp_path / "straight", *common))
    out = tmp_path / "resumed"
    real = _kill_when(monkeypatch, "train_step", lambda run, step: step == 2)  # after the step-2 checkpoint
    with pytest.raises(Killed):
        train_command.train(_cfg(out, *common))
    monkeypatch.setattr(train_module, "train_step", real)
    train_command.train(_cfg(out, *common), resume=True)
    assert _rows(out) == _rows(tmp_path / "straight")  # kl, completion_len, ... of every step
    _assert_same_weights(out, tmp_path / "straight")


@pytest.mark.parametrize("kill_step", [2, 4], ids=["before-first-checkpoint", "after-logging"])
def test_resume_leaves_no_duplicate_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kill_step: int) -> None:
    """Item 6: killed after a step's row was logged, before its checkpoint: on resume the rows
    past the checkpoint are dropped (then written again); before the first checkpoint the
    warm-up is neither re-run nor re-logged (it was saved once, right after it ran)."""
    common = ["max_steps=4", "save_every=2"]
    train_command.train(_cfg(tmp_path / "straight", *common))
    out = tmp_path / "resumed"
    real = _kill_when(monkeypatch, "checkpoint", lambda run, step: step == kill_step)
    with pytest.raises(Killed):
        train_command.train(_cfg(out, *common))
    monkeypatch.setattr(train_module, "checkpoint", real)
    warmups = _kill_when(monkeypatch, "supervised_steps", lambda *args: True)  # must not run again
    train_command.train(_cfg(out, *common), resume=True)
    monkeypatch.setattr(train_module, "supervised_steps", warmups)
    assert _rows(out) == _rows(tmp_path / "straight")
    _assert_same_weights(out, tmp_path / "straight")


@pytest.mark.parametrize("key,value", [("learning_rate", float("inf")), ("max_grad_norm", float("nan"))])
def test_non_finite_updates_never_reach_the_weights(tmp_path: Path, key: str, value: float) -> None:
    """Item 3: a finite loss and gradient norm can still make non-finite weights (an inf
    learning rate) or a NaN clipped gradient (a NaN max_grad_norm). Such a step is undone and
    counted as skipped, nothing non-finite is saved, and the run does not end as a success."""
    cfg = _cfg(tmp_path / "run", "max_steps=2", "save_every=1", "max_bad_steps=3")
    setattr(cfg, key, value)  # set after loading: what a config check might refuse is not the point here
    run = train_command.setup(cfg)
    before = [p.detach().clone() for p in run.model.parameters()]
    assert train_module.train_step(run, 0)["update_skipped"]
    assert all(torch.equal(p, b) for p, b in zip(run.model.parameters(), before, strict=True))  # restored
    run.log.close()

    cfg = _cfg(tmp_path / "train", "max_steps=2", "save_every=1", "max_bad_steps=3")
    setattr(cfg, key, value)
    with pytest.raises(train_command.TrainingStopped, match="non-finite"):
        train_command.train(cfg)
    rows = [r for r in read_metrics(tmp_path / "train" / "metrics.jsonl") if "loss" in r]
    assert [r["update_skipped"] for r in rows] == [True, True]
    assert list_checkpoints(tmp_path / "train") == []
    assert not (tmp_path / "train" / "model").exists()


def test_saves_refuse_non_finite_weights(tmp_path: Path) -> None:
    """Item 3: the last line of defence, whatever the loop did."""
    from fgrpo.trainer.checkpoint import NonFiniteWeights

    run = train_command.setup(_cfg(tmp_path, "sft_warmup_steps=0"))
    with torch.no_grad():
        next(run.model.parameters())[0, 0] = float("nan")
    with pytest.raises(NonFiniteWeights):
        train_module.checkpoint(run, 1)
    with pytest.raises(NonFiniteWeights):
        train_module.save_final_model(run, tmp_path / "model")
    assert list_checkpoints(tmp_path) == [] and not (tmp_path / "model").exists()


def test_half_deleted_checkpoint_never_counts_as_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 7: a kill while pruning an old checkpoint leaves no partial step-* folder."""
    import shutil

    run = train_command.setup(_cfg(tmp_path, "sft_warmup_steps=0", "keep_last=1"))
    train_module.checkpoint(run, 1)
    real_rmtree = shutil.rmtree

    def killed_midway(path, *args, **kwargs):  # deletes the weights, then the process dies
        if (Path(path) / "model").is_dir():
            real_rmtree(Path(path) / "model")
            raise Killed
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", killed_midway)
    with pytest.raises(Killed):
        train_module.checkpoint(run, 2)  # step 2 complete, then step 1 pruned
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000002"]
    train_module.checkpoint(run, 3)  # the next save cleans the leftover
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000003"]


def test_signal_right_after_a_periodic_save_does_not_save_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Items 8 and 9: a signal during a step that is then saved periodically: that step is not
    saved a second time (which deleted its folder, the only complete checkpoint with
    keep_last=1), and the run ends with TrainingInterrupted (exit 130), not as finished."""
    saves: list[int] = []
    real_save, real_step = train_module.save_checkpoint, train_module.train_step

    def counted_save(output_dir, step, *args, **kwargs):
        saves.append(step)
        return real_save(output_dir, step, *args, **kwargs)

    def step_then_signal(run, step):
        row = real_step(run, step)
        if step == 1:  # the second step, saved right after it (save_every=2)
            os.kill(os.getpid(), signal.SIGINT)
        return row

    monkeypatch.setattr(train_module, "save_checkpoint", counted_save)
    monkeypatch.setattr(train_module, "train_step", step_then_signal)
    with pytest.raises(train_command.TrainingInterrupted) as stopped:
        train_command.train(_cfg(tmp_path, "sft_warmup_steps=0", "max_steps=4", "save_every=2", "keep_last=1"))
    assert stopped.value.exit_code == 130
    assert saves == [2]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000002"]
    assert not (tmp_path / "model").exists()


def test_signal_during_warmup_saves_the_warmup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 9: a SIGTERM during the SFT warm-up is the trainer's: the warm-up finishes and is
    saved, no RL step runs, the run ends with exit 143; a resume starts RL from it."""
    real = train_module.supervised_steps

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    def not_the_trainers(signum, frame):
        raise RuntimeError("the signal reached the default handler, not the trainer's")

    monkeypatch.setattr(train_module, "supervised_steps", signalled)
    previous = signal.signal(signal.SIGTERM, not_the_trainers)
    try:
        with pytest.raises(train_command.TrainingInterrupted) as stopped:
            train_command.train(_cfg(tmp_path, "max_steps=2"))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.exit_code == 143
    from fgrpo.trainer.checkpoint import warmup_checkpoint

    assert warmup_checkpoint(tmp_path) is not None
    assert not [r for r in read_metrics(tmp_path / "metrics.jsonl") if "loss" in r]
    monkeypatch.setattr(train_module, "supervised_steps", real)
    _kill_when(monkeypatch, "supervised_steps", lambda *args: True)  # the resume reuses the saved warm-up
    train_command.train(_cfg(tmp_path, "max_steps=2"), resume=True)
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_final_model_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 10: a kill while the final model is written leaves no model/ folder (before:
    weights without a tokenizer); a later write is complete."""
    run = train_command.setup(_cfg(tmp_path, "sft_warmup_steps=0"))
    real = run.tokenizer.save_pretrained

    def killed(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(run.tokenizer, "save_pretrained", killed)
    with pytest.raises(Killed):
        train_module.save_final_model(run, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    monkeypatch.setattr(run.tokenizer, "save_pretrained", real)
    train_module.save_final_model(run, tmp_path / "model")
    assert (tmp_path / "model" / "model.safetensors").is_file() and (tmp_path / "model" / "tokenizer.json").is_file()
    assert not list(tmp_path.glob(".tmp-*"))


# ------------------------------------------------------------------ real kill -9, several times


def _launches(out: Path) -> int:
    """How many processes have got past their imports and setup's first line in ``out``."""
    path = out / "metrics.jsonl"
    return path.read_text().count('"note": "launch:') if path.is_file() else 0


def _run_until(proc: subprocess.Popen, out: Path, launched: int, seconds: float | None) -> float:
    """Wait for ``proc`` to get past its setup's first line, then ``seconds`` (None: to its
    end); SIGKILL it if still running. Returns the seconds it ran past that line."""
    _wait_for(lambda: _launches(out) > launched or proc.poll() is not None)
    t0 = time.time()
    try:
        proc.wait(timeout=seconds if seconds is not None else 600)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    return time.time() - t0


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["use_lora=true", "lora_r=4", "kl_beta=0.1"]], ids=["full", "lora-warmup-kl"])
def test_seeded_kill_9_loop_resumes_bit_for_bit(tmp_path: Path, extra: list[str]) -> None:
    """Four SIGKILLs at seeded random moments of `fgrpo train` (the warm-up, steps, saves:
    saves pause 0.3 s before their rename to widen that window), each followed by `--resume`,
    then `--resume` until done: the final weights equal the uninterrupted run's bit for bit
    and metrics.jsonl holds every row once, equal to the uninterrupted rows."""
    common = ["sft_warmup_steps=40", "max_steps=12", "save_every=2", "keep_last=1", "torch_threads=1", *extra]
    cmd = [sys.executable, "-m", "fgrpo", "train", "--config", "configs/toy.yaml", *FAST, *common]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FGRPO_TEST_PAUSE_BEFORE_RENAME": "0.3"}
    straight, out, log = tmp_path / "straight", tmp_path / "killed", tmp_path / "stderr.txt"

    def start(folder: Path, *flags: str) -> subprocess.Popen:
        with log.open("a") as err:
            return subprocess.Popen([*cmd, f"output_dir={folder}", *flags], cwd=REPO, stdout=subprocess.DEVNULL,
                                    stderr=err, env=env)

    proc = start(straight)
    duration = _run_until(proc, straight, 0, None)  # past setup's first line: what the kills are drawn over
    assert proc.returncode == 0, log.read_text()[-2000:]

    rng, moments = random.Random(12), []
    for attempt in range(4):
        moments.append(round(rng.uniform(0.0, 0.5) * duration, 2))
        launched = _launches(out)
        proc = start(out, *(["--resume"] if attempt else []))
        _run_until(proc, out, launched, moments[-1])
        assert proc.returncode == -signal.SIGKILL, (moments, log.read_text()[-2000:])  # killed, not finished
    for _ in range(4):  # then resume until done (the kills may all have landed before a checkpoint)
        launched = _launches(out)
        proc = start(out, "--resume")
        _run_until(proc, out, launched, None)
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, (moments, log.read_text()[-2000:])
    _assert_same_weights(out, straight)
    assert _rows(out) == _rows(straight), moments
    assert not list((out / "checkpoints").glob(".tmp-*")) and not list(out.glob(".tmp-*"))
