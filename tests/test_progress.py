"""Progress lines without a terminal, and the ``max_time`` budget of sft and train: a run
stopped by it is marked, exits 0, and ``--resume`` continues it to the uninterrupted run."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fgrpo.commands import sft as sft_command
from fgrpo.commands import train as train_command
from fgrpo.config import load_config
from fgrpo.config.commands import SFTConfig, TrainConfig
from fgrpo.config.progress import Progress, TimeBudget, clock_text, parse_duration
from fgrpo.trainer.metrics_log import read_metrics

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


# ------------------------------------------------------------------ the helper


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), (90, 90.0), ("1:30", 90.0), ("01:02:03", 3723.0),
                                               ("0.5", 0.5), (None, None)])
def test_parse_duration(text: object, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "-5", "soon", "1:xx", "inf", "nan"])
def test_parse_duration_refuses_what_is_no_budget(text: str) -> None:
    with pytest.raises(ValueError, match="key 'max_time'"):
        parse_duration(text)


def test_max_time_is_checked_with_the_config() -> None:
    from fgrpo.config import ConfigError

    with pytest.raises((ConfigError, ValueError), match="max_time"):
        load_config(TrainConfig, None, ["max_time=soon"])
    assert parse_duration(load_config(SFTConfig, None, ["max_time=1:00:00"]).max_time) == 3600  # YAML reads 1:00:00 as 3600


def test_clock_text() -> None:
    assert [clock_text(s) for s in (0, 59.6, 125, 3725.2)] == ["0:00", "1:00", "2:05", "1:02:05"]


def test_plain_lines_every_n_and_at_the_end_without_a_terminal() -> None:
    sink = io.StringIO()  # not a terminal
    with Progress(5, "sft", every=2, stream=sink) as bar:
        for i in range(5):
            bar.update(1, loss=1.0 / (i + 1))
    lines = sink.getvalue().splitlines()
    assert [line.split(" |")[0] for line in lines] == [
        "[sft] step 2/5 (40%) loss=0.5", "[sft] step 4/5 (80%) loss=0.25", "[sft] step 5/5 (100%) loss=0.2"]
    assert "ETA" in lines[0] and "ETA" not in lines[-1]


def test_a_resumed_bar_counts_from_its_start_and_a_disabled_one_is_silent() -> None:
    sink = io.StringIO()
    bar = Progress(10, "fgrpo", every=1, initial=6, stream=sink)
    bar.update(1)
    assert sink.getvalue().startswith("[fgrpo] step 7/10 (70%)")
    quiet = io.StringIO()
    Progress(3, "x", stream=quiet, enabled=False).update(3)
    assert quiet.getvalue() == ""


def test_budget_judges_the_next_step_by_the_longest_so_far() -> None:
    now = {"t": 100.0}
    budget = TimeBudget(10.0, clock=lambda: now["t"])
    now["t"] = 104.0
    budget.record(3.0)
    assert not budget.next_would_exceed()  # 4 + 3 <= 10
    now["t"] = 107.5
    assert budget.next_would_exceed()  # 7.5 + 3 > 10
    assert not TimeBudget(None).next_would_exceed()


# ------------------------------------------------------------------ max_time, stopped and resumed


def fake_budget(monkeypatch: pytest.MonkeyPatch, module: object) -> None:
    """A budget on a clock that advances one 'second' per reading: the stop step is fixed."""
    tick = {"t": 0.0}

    def clock() -> float:
        tick["t"] += 1.0
        return tick["t"]

    monkeypatch.setattr(module, "TimeBudget", lambda seconds: TimeBudget(seconds, clock=clock))


SFT = ["model=builtin:tiny-llama", "dataset=toy", "toy_num_train=64", "max_steps=8", "batch_size=4", "warmup_steps=2",
       "log_every=1", "torch_threads=1", "learning_rate=0.001"]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_sft_max_time_stops_cleanly_and_resume_matches_one_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    sft_command.run_sft(load_config(SFTConfig, None, [*SFT, f"output_dir={full}"]))
    fake_budget(monkeypatch, sft_command)
    sft_command.run_sft(load_config(SFTConfig, None, [*SFT, f"output_dir={part}", "max_time=10"]))
    record = train_command.stopped_early(part)
    assert record is not None and 0 < record["step"] < 8 and record["max_steps"] == 8, record
    assert (part / "model" / "model.safetensors").is_file()  # the outputs of a finished run
    assert "stopped early by max_time at step" in (part / "model" / "README.md").read_text()
    monkeypatch.undo()
    sft_command.run_sft(load_config(SFTConfig, None, [*SFT, f"output_dir={part}"]), resume=True)
    assert train_command.stopped_early(part) is None  # finished now
    assert not list((part / "checkpoints").glob("step-*/sft_state.pt"))  # a later --resume starts nothing stale
    a, b = _weights(full / "model"), _weights(part / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = lambda out: [r["sft/loss"] for r in read_metrics(out / "metrics.jsonl") if "sft/loss" in r]  # noqa: E731
    assert losses(full) == losses(part) and len(losses(full)) == 8


TRAIN = ["sft_warmup_steps=20", "tensorboard=false", "prompts_per_step=2", "group_size=4", "eval_every=0",
         "max_steps=5", "save_every=100", "torch_threads=1"]


def test_train_max_time_stops_cleanly_and_resume_matches_one_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    toy = REPO / "configs" / "toy.yaml"
    train_command.train(load_config(TrainConfig, toy, [*TRAIN, f"output_dir={full}"]))
    fake_budget(monkeypatch, train_command)
    train_command.train(load_config(TrainConfig, toy, [*TRAIN, f"output_dir={part}", "max_time=12"]))
    record = train_command.stopped_early(part)
    assert record is not None and 0 < record["step"] < 5, record
    step = record["step"]
    assert (part / "checkpoints" / f"step-{step:06d}").is_dir() and (part / "model" / "config.json").is_file()
    assert f"stopped early at step {step} of 5" in (part / "metrics.jsonl").read_text()
    monkeypatch.undo()
    train_command.train(load_config(TrainConfig, toy, [*TRAIN, f"output_dir={part}"]), resume=True)
    assert train_command.stopped_early(part) is None
    keys = ("reward/slate", "reward/rank", "loss", "grad_norm")
    rows = lambda out: {r["step"]: [r[k] for k in keys] for r in read_metrics(out / "metrics.jsonl") if "loss" in r}  # noqa: E731
    assert rows(full) == rows(part) and sorted(rows(full)) == [1, 2, 3, 4, 5]
    a, b = _weights(full / "model"), _weights(part / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_reports_a_max_time_stop_with_exit_0_and_progress_lines(tmp_path: Path) -> None:
    """Through the CLI, output captured (no terminal): one plain progress line per step, and a
    budget too small for any step stops at step 0 with the model written and exit 0."""
    run = lambda *extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "fgrpo", "train", "--config", "configs/toy.yaml", *TRAIN, *extra],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=ENV)
    done = run(f"output_dir={tmp_path / 'a'}", "max_steps=2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "[fgrpo] step 1/2 (50%) slate=" in done.stderr and "[fgrpo] step 2/2 (100%)" in done.stderr, done.stderr[-2000:]
    assert "[sft warm-up] step 10/20" in done.stderr
    stopped = run(f"output_dir={tmp_path / 'b'}", "max_time=0.001")
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    assert "stopped early: max_time (0.001) reached at step 0 of 5" in stopped.stdout, stopped.stdout
    assert json.loads((tmp_path / "b" / "stopped_early.json").read_text())["step"] == 0
    assert (tmp_path / "b" / "model" / "config.json").is_file()


def test_sequential_epochs_and_item_pretraining_print_progress(capsys: pytest.CaptureFixture[str]) -> None:
    """The baselines' epochs and the next-item pretraining steps: a line each, captured (no terminal)."""
    from fgrpo.baselines.sequential import SeqConfig, SequentialScorer
    from fgrpo.data.schema import Candidate, Example
    from fgrpo.models.idtiny import build_id_tiny, build_item_tokenizer
    from fgrpo.trainer.pretrain import pretrain_items

    train = [Example(f"e{u}-{t}", "q", [Candidate(str(i), str(i)) for i in range(1, 6)], {str((t % 5) + 1): 1},
                     meta={"user": f"u{u}", "position": t, "history_ids": [str(((t - 1) % 5) + 1)]})
             for u in range(3) for t in range(1, 5)]
    SequentialScorer("gru4rec", SeqConfig(epochs=2, hidden=8, batch_size=4, max_len=5)).fit(train)
    err = capsys.readouterr().err
    assert "[gru4rec] epoch 1/2 (50%) loss=" in err and "[gru4rec] epoch 2/2 (100%)" in err, err
    tok = build_item_tokenizer([str(i) for i in range(1, 6)])
    model = build_id_tiny(len(tok), 16, 1, 2, 0)
    pretrain_items(model, tok, [["1", "2", "3", "4"], ["2", "3", "4", "5"]], steps=4, batch_size=2, seq_len=4,
                   learning_rate=0.01, seed=0, log_every=2)
    err = capsys.readouterr().err
    assert "[pretrain-items] step 2/4 (50%) loss=" in err and "[pretrain-items] step 4/4 (100%)" in err, err


def test_compare_prints_each_run_with_an_eta(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from fgrpo.experiments import runner
    from fgrpo.experiments.report import CompareOutcome

    class Spec:
        def __init__(self, seed: int, done: bool = False) -> None:
            self.method, self.seed, self.done, self.run_dir = "m", seed, done, tmp_path / str(seed)
            self.extra_evals: dict = {}  # no extra datasets
            self.marker = tmp_path / f"{seed}.json"
            self.marker.write_text(json.dumps({"metrics": {}}))

        def budget(self) -> dict:
            return {}

    monkeypatch.setattr(runner, "run_one", lambda spec, poll: {"wall_clock_s": 1.0, "peak_rss_gib": 0.1, "metrics": {"NDCG@5": 0.5}})
    lines: list[str] = []
    cfg = SimpleNamespace(output_dir=str(tmp_path), poll_seconds=0.1, stop_on_failure=False, only_seeds=None)
    runner._run_all(cfg, [Spec(0, done=True), Spec(1), Spec(2), Spec(3)], CompareOutcome(records={}), lines.append)
    heads = [line.split(":")[0] for line in lines[1:] if "running" in line or "skipped" in line]
    assert heads[0] == "[1/4] m seed 0" and heads[1] == "[2/4] m seed 1"  # nothing run yet: no ETA
    assert heads[2].startswith("[3/4] m seed 2 (ETA 0") and heads[3].startswith("[4/4] m seed 3 (ETA 0"), heads
