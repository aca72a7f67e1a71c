"""``fgrpo compare``'s names in one import, for callers written before the experiment runner
was split by job: :mod:`.spec` (the experiment file), :mod:`.expand` (its runs),
:mod:`.runner` (running them), :mod:`.stats`, :mod:`.report` and :mod:`.plots`. New code
imports from those modules."""

from __future__ import annotations

from fgrpo.experiments.expand import KINDS, expand_runs
from fgrpo.experiments.plots import Curves, read_curves, write_plots
from fgrpo.experiments.report import (
    CompareOutcome,
    format_run_list,
    results_markdown,
    summarize,
    write_results,
)
from fgrpo.experiments.runner import (
    RunFailed,
    Stage,
    materialize_toy,
    report_compare,
    run_compare,
    run_measured,
    run_one,
)
from fgrpo.experiments.spec import (
    CompareConfig,
    MethodSpec,
    RunSpec,
    budget_text,
    load_compare_config,
)
from fgrpo.experiments.stats import format_mean_ci, mean_ci95, paired_differences, t_quantile_975

__all__ = [
    "KINDS", "CompareConfig", "CompareOutcome", "Curves", "MethodSpec", "RunFailed", "RunSpec", "Stage", "budget_text",
    "expand_runs", "format_mean_ci", "format_run_list", "load_compare_config", "materialize_toy", "mean_ci95",
    "paired_differences", "read_curves", "report_compare", "results_markdown", "run_compare", "run_measured", "run_one", "summarize",
    "t_quantile_975", "write_plots", "write_results",
]  # fmt: skip
