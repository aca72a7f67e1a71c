"""Several processes split a step's prompt groups and reach the one-process parameters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
COMMON = ["--config", "configs/toy.yaml", "sft_warmup_steps=300", "tensorboard=false", "group_size=4",
          "prompts_per_step=2", "max_steps=3", "save_every=3", "eval_every=0"]


def run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_two_processes_match_one_process(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    run([sys.executable, "-m", "fgrpo", "train", *COMMON, f"output_dir={one}", "torch_threads=1"])
    torchrun = Path(sys.executable).with_name("torchrun")
    run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "fgrpo", "train", *COMMON,
         f"output_dir={two}", "torch_threads=1"])
    a = load_file(one / "model" / "model.safetensors")
    b = load_file(two / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    lines = (two / "metrics.jsonl").read_text().splitlines()
    assert sum('"reward/slate"' in line for line in lines) == 3  # logged once, not once per process
    updates = sum(1 for line in lines if '"grad_norm": 0.0' not in line and '"reward/slate"' in line)
    assert updates >= 1  # some step had a learning signal, so equality is not trivial
    assert len(list((two / "checkpoints").glob("step-*"))) == 1
    assert {p.name for p in (two / "checkpoints" / "step-000003").glob("rng-*.pt")} == {"rng-0.pt", "rng-1.pt"}


def test_step_metrics_cover_all_processes(tmp_path: Path) -> None:
    """completion_len and phase_tokens/* are means over every process's
    rollouts, not rank 0's. Step 1 starts from the same weights in both runs and each prompt
    group samples from its own generator, so its rollouts, hence the means, are the same."""
    from fgrpo.trainer.metrics_log import read_metrics

    common = ["--config", "configs/toy.yaml", "sft_warmup_steps=20", "tensorboard=false", "group_size=4",
              "prompts_per_step=2", "max_steps=1", "save_every=1", "eval_every=0", "torch_threads=1"]
    one, two = tmp_path / "one", tmp_path / "two"
    run([sys.executable, "-m", "fgrpo", "train", *common, f"output_dir={one}"])
    torchrun = Path(sys.executable).with_name("torchrun")
    run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "fgrpo", "train", *common, f"output_dir={two}"])
    a, b = ([r for r in read_metrics(out / "metrics.jsonl") if "loss" in r][0] for out in (one, two))
    for key in ("completion_len", "phase_tokens/slate", "phase_tokens/rank", "reward/slate", "reward/rank"):
        assert b[key] == pytest.approx(a[key], rel=1e-6), key
    # the error analysis and the phase signals are over the gathered batch too
    counts = ("rollout/errors@5/relevant", "rollout/errors@5/slate_miss_count", "rollout/errors@5/rank_drop_count",
              "groups/slate_rank_corr_groups")
    assert [b[k] for k in counts] == [a[k] for k in counts] and a["rollout/errors@5/relevant"] > 0
    for key in ("adv/slate_std", "adv/rank_std", "adv/slate_group_std", "adv/rank_group_std"):
        assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9), key
    corr = "groups/slate_rank_corr"
    assert (a[corr] is None) == (b[corr] is None) and (a[corr] is None or b[corr] == pytest.approx(a[corr], rel=1e-6))
