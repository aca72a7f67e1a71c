"""The curves of a comparison, read from each RL run's ``metrics.jsonl``: rewards per phase
vs step (a trailing moving average), greedy valid NDCG@5 vs step and vs training seconds (the
sum of ``step_time_s``: RL steps only, not validation or warm-up), and vs rollouts generated
(step x prompts_per_step x group_size). Each curve is the mean over seeds with a 95% CI band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgrpo.config.commands import TrainConfig
from fgrpo.experiments.spec import CompareConfig, RunSpec
from fgrpo.experiments.stats import mean_ci95


@dataclass
class Curves:
    """One RL run's curves, read from its metrics.jsonl."""

    steps: list[int]
    slate: list[float]
    rank: list[float]
    valid_steps: list[int]
    valid_ndcg: list[float]
    valid_seconds: list[float]  # RL training seconds up to that step
    rollouts_per_step: int


def read_curves(metrics_file: Path, rollouts_per_step: int) -> Curves:
    """RL rows only (warm-up rows carry ``phase``); a step logged twice (resume) keeps its last row."""
    from fgrpo.trainer.metrics_log import read_metrics

    rows: dict[int, dict[str, Any]] = {}
    for row in read_metrics(metrics_file) if metrics_file.is_file() else []:
        if "phase" not in row:
            rows[int(row["step"])] = {**rows.get(int(row["step"]), {}), **row}
    steps = sorted(rows)
    rl = [s for s in steps if rows[s].get("reward/slate") is not None]
    elapsed, seconds, prev = {0: 0.0}, 0.0, 0
    for s in rl:  # with log_every > 1 the unlogged steps are taken to last as long as the logged one
        seconds += float(rows[s].get("step_time_s") or 0.0) * (s - prev)
        elapsed[s], prev = seconds, s
    valid = [s for s in steps if rows[s].get("valid/NDCG@5") is not None]
    return Curves(
        steps=rl, slate=[float(rows[s]["reward/slate"]) for s in rl], rank=[float(rows[s]["reward/rank"]) for s in rl],
        valid_steps=valid, valid_ndcg=[float(rows[s]["valid/NDCG@5"]) for s in valid],
        valid_seconds=[elapsed.get(s, math.nan) for s in valid], rollouts_per_step=rollouts_per_step,
    )  # fmt: skip


def _moving_average(values: Sequence[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def _across_seeds(series: Sequence[dict[float, float]]) -> tuple[list[float], list[float], list[float]]:
    """x, mean, CI half-width (0 where only one seed) at every x any seed has."""
    xs = sorted({x for s in series for x in s})
    means, halves = [], []
    for x in xs:
        mean, half = mean_ci95([s[x] for s in series if x in s])
        means.append(mean)
        halves.append(half or 0.0)
    return xs, means, halves


def write_plots(cfg: CompareConfig, specs: Sequence[RunSpec], records: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Path]:
    """curves_rewards.png, curves_valid_ndcg.png, sample_efficiency.png (Agg backend: no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(cfg.output_dir)
    curves: dict[str, list[Curves]] = {}
    for spec in specs:
        if spec.kind != "train" or (spec.method, spec.seed) not in records:
            continue
        c = spec.train_cfg
        assert isinstance(c, TrainConfig)
        curves.setdefault(spec.method, []).append(read_curves(Path(c.output_dir) / "metrics.jsonl", c.prompts_per_step * c.group_size))
    colors = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(curves)}
    band = "band: 95% CI over seeds"

    def draw(ax: Any, name: str, series: list[dict[float, float]]) -> None:
        xs, mean, half = _across_seeds(series)
        if not xs:
            return
        ax.plot(xs, mean, color=colors[name], label=f"{name} (n={len(series)})", marker="o" if len(xs) <= 12 else None, ms=3)
        lo = [m - h for m, h in zip(mean, half, strict=True)]
        hi = [m + h for m, h in zip(mean, half, strict=True)]
        ax.fill_between(xs, lo, hi, color=colors[name], alpha=0.2, linewidth=0)

    def finish(fig: Any, axes: Sequence[Any], path: Path, empty: str, has_data: bool) -> Path:
        for ax in axes:
            if has_data:
                ax.legend(fontsize=7)
                ax.grid(alpha=0.3)
            else:
                ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes, fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    files: dict[str, Path] = {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    longest = max((len(c.steps) for runs in curves.values() for c in runs), default=0)
    window = cfg.reward_smoothing or max(1, round(longest / 20))
    for name, runs in curves.items():
        for ax, attr in zip(axes, ("slate", "rank"), strict=True):
            draw(ax, name, [dict(zip(r.steps, _moving_average(getattr(r, attr), window), strict=True)) for r in runs])
    axes[0].set(title="slate reward", xlabel="RL step", ylabel="mean reward of the step's rollouts")
    axes[1].set(title="rank reward", xlabel="RL step")
    fig.suptitle(f"rewards per phase (moving average of {window} step(s)); {band}", fontsize=10)
    has_rewards = any(r.steps for runs in curves.values() for r in runs)
    files["curves_rewards.png"] = finish(fig, axes, out / "curves_rewards.png", "no RL runs finished", has_rewards)

    has_valid = any(r.valid_steps for runs in curves.values() for r in runs)
    empty = "no valid/NDCG@5 in metrics.jsonl\n(set eval_every > 0 in base)"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, runs in curves.items():
        draw(axes[0], name, [dict(zip(r.valid_steps, r.valid_ndcg, strict=True)) for r in runs])
        # x: mean over seeds of the seconds at each evaluated step, so seeds line up step by step
        by_step = [dict(zip(r.valid_steps, r.valid_seconds, strict=True)) for r in runs]
        steps, secs, _ = _across_seeds(by_step)
        _, ndcg, half = _across_seeds([dict(zip(r.valid_steps, r.valid_ndcg, strict=True)) for r in runs])
        if steps:
            axes[1].plot(secs, ndcg, color=colors[name], label=f"{name} (n={len(runs)})", marker="o" if len(steps) <= 12 else None, ms=3)
            axes[1].fill_between(secs, [m - h for m, h in zip(ndcg, half, strict=True)],
                                 [m + h for m, h in zip(ndcg, half, strict=True)], color=colors[name], alpha=0.2, linewidth=0)  # fmt: skip
    axes[0].set(title="valid NDCG@5 (greedy) vs step", xlabel="RL step", ylabel="valid NDCG@5")
    axes[1].set(title="valid NDCG@5 vs training time", xlabel="RL training seconds (sum of step_time_s)")
    fig.suptitle(f"held-out NDCG@5 during training; {band}", fontsize=10)
    files["curves_valid_ndcg.png"] = finish(fig, axes, out / "curves_valid_ndcg.png", empty, has_valid)

    fig, ax = plt.subplots(1, 1, figsize=(6.5, 4))
    for name, runs in curves.items():
        draw(ax, name, [{s * r.rollouts_per_step: v for s, v in zip(r.valid_steps, r.valid_ndcg, strict=True)} for r in runs])
    ax.set(title=f"sample efficiency; {band}", xlabel="rollouts generated (step × prompts_per_step × group_size)", ylabel="valid NDCG@5")
    files["sample_efficiency.png"] = finish(fig, [ax], out / "sample_efficiency.png", empty, has_valid)
    return files
