"""``fgrpo compare EXPERIMENT.yaml``: several methods x seeds with equal budgets, each run a
subprocess of the other commands; writes the results table (mean ± 95% CI), curves, costs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fgrpo.experiments.expand import expand_runs
from fgrpo.experiments.report import CompareOutcome, format_run_list
from fgrpo.experiments.runner import report_compare, run_compare
from fgrpo.experiments.spec import load_compare_config


def run(experiment: Path, overrides: list[str], *, dry_run: bool = False, report_only: bool = False,
        echo: Callable[[str], None] = print) -> CompareOutcome | None:  # fmt: skip
    """Config (the experiment YAML + ``key=value``, ``base.KEY=value``, ``eval.KEY=value``)
    -> the expanded runs -> run the unfinished ones (or only list them / only report) -> write
    results.md/json, runs.csv and the plots. Returns None for a dry run."""
    cfg = load_compare_config(experiment, overrides)  # every run's config is built and checked here
    if dry_run:
        specs = expand_runs(cfg)
        echo(f"{len(specs)} runs -> {cfg.output_dir}")
        echo(format_run_list(specs))
        return None
    return report_compare(cfg) if report_only else run_compare(cfg, echo=echo)
