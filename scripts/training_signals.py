"""The RL runs' training signals of an `fgrpo compare`, per method over seeds: how often each
phase's group has zero reward variance, the within-group correlation of R_slate with R_rank
(how much the two signals differ: the condition for factorized advantages to matter), each
phase's advantage spread, and the rollouts' slate miss / rank drop at the start and the end
of training; then, for every finished run, the test split's slate miss / rank drop
(docs/results.md, "Coverage-bound pools").

    python scripts/training_signals.py runs/compare_ml100k_next3 [--window 50]

Reads ``output_dir/runs/<method>/seed*/train/metrics.jsonl`` as `fgrpo train` writes it
(one JSON line per step); prints a markdown table, each cell the mean over seeds ± the 95%
interval over seeds (t), and each seed's value is its mean over the steps. Slate miss and
rank drop are shares of all relevant items of the rollouts in those steps (counts pooled).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from fgrpo.experiments.stats import mean_ci95


def _steps(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [r for r in (json.loads(line) for line in f if line.strip()) if "reward/slate" in r]


def _mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return sum(values) / len(values) if values else math.nan


def run_signals(steps: list[dict], window: int) -> dict[str, float]:
    """One run's signals: per-step means (the correlation weighted by the groups where it is
    defined) and the rollouts' slate miss / rank drop over the first and last ``window`` steps."""
    corr_w = [(r["groups/slate_rank_corr"], r.get("groups/slate_rank_corr_groups", 1)) for r in steps
              if r.get("groups/slate_rank_corr") is not None and math.isfinite(r["groups/slate_rank_corr"])]  # fmt: skip
    n_corr = sum(w for _, w in corr_w)
    head, tail = steps[:window], steps[-window:]

    def share(rows: list[dict], key: str) -> float:  # pooled over the steps: counts, not a mean of ratios
        miss = sum(r.get("rollout/errors@5/slate_miss_count", 0) for r in rows)
        drop = sum(r.get("rollout/errors@5/rank_drop_count", 0) for r in rows)
        rel = sum(r.get("rollout/errors@5/relevant", 0) for r in rows)
        return (miss if key == "miss" else drop) / rel if rel else math.nan

    return {
        "slate_zero_var": _mean([r.get("groups/slate_zero_var_frac") for r in steps]),
        "rank_zero_var": _mean([r.get("groups/rank_zero_var_frac") for r in steps]),
        "corr": sum(c * w for c, w in corr_w) / n_corr if n_corr else math.nan,
        "corr_steps": len(corr_w) / len(steps) if steps else math.nan,
        "adv_slate": _mean([r.get("adv/slate_group_std") for r in steps]),
        "adv_rank": _mean([r.get("adv/rank_group_std") for r in steps]),
        "miss_start": share(head, "miss"),
        "miss_end": share(tail, "miss"),
        "drop_start": share(head, "drop"),
        "drop_end": share(tail, "drop"),
    }


COLUMNS = {
    "slate_zero_var": "slate groups with zero variance",
    "rank_zero_var": "rank groups with zero variance",
    "corr": "corr(R_slate, R_rank) in groups",
    "corr_steps": "steps where it is defined",
    "adv_slate": "slate adv. spread",
    "adv_rank": "rank adv. spread",
    "miss_start": "relevant missed by the slate, first steps",
    "miss_end": "the same, last steps",
    "drop_start": "relevant in the slate, not in the top k, first steps",
    "drop_end": "the same, last steps",
}


def test_errors(metrics: dict) -> dict[str, float]:
    """One run's test error analysis from its marker's metrics: the shares of all relevant
    items that the slate missed and that the slate held but the top k did not."""
    rel = metrics.get("errors@5/relevant") or 0
    if not rel:
        return {"miss": math.nan, "drop": math.nan}
    return {"miss": metrics["errors@5/slate_miss_count"] / rel, "drop": metrics["errors@5/rank_drop_count"] / rel}


def _cell(values: list[float]) -> str:
    """mean ± 95% CI of the finite values; "–" when none (a run logged before the signal existed)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "–"
    mean, half = mean_ci95(finite)
    return f"{mean:.3f}" + (f" ± {half:.3f}" if half is not None and math.isfinite(half) else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("output_dir", type=Path, help="the compare's output_dir")
    ap.add_argument("--window", type=int, default=50, help="steps at the start and at the end for slate miss / rank drop")
    args = ap.parse_args()
    by_method: dict[str, list[dict[str, float]]] = {}
    for path in sorted(args.output_dir.glob("runs/*/seed*/train/metrics.jsonl")):
        steps = _steps(path)
        if steps:  # SFT runs log no rollouts
            by_method.setdefault(path.parents[2].name, []).append(run_signals(steps, args.window))
    if not by_method:
        raise SystemExit(f"{args.output_dir}: no RL run's train/metrics.jsonl with rollout rewards")
    print("| method | seeds | " + " | ".join(COLUMNS.values()) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS))
    for method, runs in by_method.items():
        print(f"| {method} | {len(runs)} | " + " | ".join(_cell([r[key] for r in runs]) for key in COLUMNS) + " |")
    tests: dict[str, list[dict[str, float]]] = {}
    for path in sorted(args.output_dir.glob("runs/*/seed*/metrics.json")):  # every finished run's marker
        tests.setdefault(path.parents[1].name, []).append(test_errors(json.loads(path.read_text()).get("metrics", {})))
    print("\nTest split, every method: shares of all relevant items (k = 5)\n")
    print("| method | seeds | missed by the slate | in the slate, not in the top k | found in the top k |")
    print("|---|---:|---:|---:|---:|")
    for method, runs in tests.items():
        found = [1 - r["miss"] - r["drop"] for r in runs]
        print(f"| {method} | {len(runs)} | {_cell([r['miss'] for r in runs])} | {_cell([r['drop'] for r in runs])} | {_cell(found)} |")


if __name__ == "__main__":
    main()
