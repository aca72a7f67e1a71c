"""End to end through the CLI: the toy task is learned, and a resumed run is the same run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fgrpo.trainer.metrics_log import read_metrics

REPO = Path(__file__).resolve().parents[1]


def fgrpo(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "fgrpo", *args], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


@pytest.mark.slow
def test_fgrpo_train_learns_the_toy_task(tmp_path: Path) -> None:
    """After a short supervised warm-up, F-GRPO must raise both phase rewards clearly."""
    out = tmp_path / "toy"
    fgrpo("train", "--config", "configs/toy.yaml", f"output_dir={out}", "max_steps=150", "tensorboard=false", "save_every=1000")
    rows = read_metrics(out / "metrics.jsonl")
    rl = [r for r in rows if "reward/slate" in r]
    assert len(rl) == 150
    first, last = rl[:10], rl[-10:]
    assert mean(last, "reward/slate") > mean(first, "reward/slate") + 0.15
    assert mean(last, "reward/rank") > mean(first, "reward/rank") + 0.3
    assert mean(last, "format/valid_rate") > mean(first, "format/valid_rate") + 0.3
    # and the task itself, not only the format: greedy NDCG@5 on held-out pools rises
    evals = [r["valid/NDCG@5"] for r in rows if "valid/NDCG@5" in r]  # steps 0 (warm start), 50, 100, 150
    assert len(evals) == 4 and (evals[-1] + evals[-2]) / 2 > evals[0] + 0.1, evals
    assert (out / "model" / "config.json").is_file()
    for key in ("step", "reward/slate", "reward/rank", "reward/joint", "format/valid_rate", "adv/slate_abs_mean",
                "adv/rank_abs_mean", "groups/slate_zero_var_frac", "groups/rank_zero_var_frac", "kl", "clip_frac",
                "grad_norm", "tokens_per_s", "step_time_s", "parse_errors/slate_duplicate"):
        assert key in rl[-1], key


@pytest.mark.parametrize("estimator", ["fgrpo", "grpo"])
def test_resume_reproduces_the_uninterrupted_run(tmp_path: Path, estimator: str) -> None:
    """Stop after step 3, resume to step 6: steps 4..6 equal the uninterrupted run's, bitwise."""
    common = ["--config", "configs/toy.yaml", "sft_warmup_steps=20", "tensorboard=false",
              "prompts_per_step=2", "group_size=4", f"advantage_estimator={estimator}"]
    full, part = tmp_path / "full", tmp_path / "part"
    fgrpo("train", *common, f"output_dir={full}", "max_steps=6", "save_every=3")
    fgrpo("train", *common, f"output_dir={part}", "max_steps=3", "save_every=3")
    fgrpo("train", *common, f"output_dir={part}", "max_steps=6", "save_every=3", "--resume")
    keys = ("reward/slate", "reward/rank", "loss", "grad_norm", "completion_len", "clip_frac")
    a = {r["step"]: [r[k] for k in keys] for r in read_metrics(full / "metrics.jsonl") if "loss" in r}
    b = {r["step"]: [r[k] for k in keys] for r in read_metrics(part / "metrics.jsonl") if "loss" in r}
    assert [a[s] for s in (4, 5, 6)] == [b[s] for s in (4, 5, 6)]
    assert "resumed from" in (part / "metrics.jsonl").read_text()
