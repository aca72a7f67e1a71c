"""The tables of a comparison: ``results.md`` (mean ± 95% CI over seeds of every metric, the
budget and cost of each method), ``results.json``, ``runs.csv``, the plots
(:mod:`fgrpo.experiments.plots`) and the ``--dry-run`` list of runs."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fgrpo.config.commands import TrainConfig
from fgrpo.experiments.plots import read_curves, write_plots
from fgrpo.experiments.spec import CompareConfig, RunSpec, budget_text
from fgrpo.experiments.stats import format_mean_ci, mean_ci95, rollouts_to_reach


@dataclass
class CompareOutcome:
    """What a compare invocation produced: the finished runs' records, the failures, the files."""

    records: dict[tuple[str, int], dict[str, Any]]  # (method, seed) -> the run's metrics.json
    failures: list[str] = field(default_factory=list)
    extra_records: dict[str, dict[tuple[str, int], dict[str, Any]]] = field(default_factory=dict)  # extra dataset -> records
    files: dict[str, Path] = field(default_factory=dict)


def format_run_list(specs: Sequence[RunSpec]) -> str:
    """The expanded runs, one line each (``--dry-run``)."""
    lines = []
    for i, s in enumerate(specs, start=1):
        what = f"fgrpo {s.command}{' x2' if s.ranker_cfg else ''} + eval" if s.command else f"fgrpo eval method={s.eval_cfg.method}"
        budget = budget_text(s.budget())
        state = "done, skipped" if s.done else "to run"
        lines.append(f"{i:3d}. seed {s.seed}  {s.method:<28} {what:<26} {budget:<66} [{state}] {s.run_dir}")
        if s.warm_start is not None:
            lines.append(f"       starts from {s.warm_start}")
        for name, ev in s.extra_evals.items():
            lines.append(f"       + fgrpo eval on '{name}' ({ev.dataset}, {ev.split}) [{'done, skipped' if s.extra_done(name) else 'to run'}]")
    return "\n".join(lines)


TYPE_LABEL = {True: "slate+ranking", False: "scorer"}


def summarize(specs: Sequence[RunSpec], records: dict[tuple[str, int], dict[str, Any]], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per method (file order): mean, CI and values of each metric over its finished seeds, and the costs."""
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        entry = out.setdefault(spec.method, {
            "kind": spec.kind, "type": TYPE_LABEL[spec.producer], "budget": spec.budget(),
            "seeds_planned": [], "seeds": [], "runs": [],
        })  # fmt: skip
        entry["seeds_planned"].append(spec.seed)
        rec = records.get((spec.method, spec.seed))
        if rec is not None:
            entry["seeds"].append(spec.seed)
            entry["runs"].append(rec)
    for entry in out.values():
        runs = entry.pop("runs")
        entry["n"] = len(runs)
        entry["metrics"] = {}
        for key in [*keys, "ci95/NDCG@5", "num_examples"]:
            values = [float(r["metrics"][key]) for r in runs if isinstance(r["metrics"].get(key), (int, float))]
            mean, half = mean_ci95(values)
            entry["metrics"][key] = {"mean": mean, "ci95": half, "values": values}
        cost: dict[str, Any] = {}
        for key in ("train_s", "eval_s", "wall_clock_s", "cpu_s"):
            values = [float(r[key]) for r in runs if r.get(key) is not None]
            mean, half = mean_ci95(values)
            cost[key] = {"mean": mean, "ci95": half, "values": values}
        cost["peak_rss_gib_max"] = max((float(r["peak_rss_gib"]) for r in runs), default=math.nan)
        entry["cost"] = cost
    return out


def sample_efficiency(specs: Sequence[RunSpec], records: dict[tuple[str, int], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per RL method: each finished seed's greedy valid NDCG@5 curve (from metrics.jsonl) read as
    the warm start (step 0), the last value, and the rollouts to 95% of the last value and to
    95% of the gain over the warm start (:func:`rollouts_to_reach`); mean and CI over seeds."""
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if spec.kind != "train" or (spec.method, spec.seed) not in records:
            continue
        c = spec.train_cfg
        assert isinstance(c, TrainConfig)
        cur = read_curves(Path(c.output_dir) / "metrics.jsonl", c.prompts_per_step * c.group_size)
        if not cur.valid_steps or cur.valid_steps[0] != 0:
            continue  # no curve, or none from the warm start
        e = out.setdefault(spec.method, {"seeds": [], "start": [], "final": [], "to_95_final": [], "to_95_gain": []})
        e["seeds"].append(spec.seed)
        e["start"].append(cur.valid_ndcg[0])
        e["final"].append(cur.valid_ndcg[-1])
        for of in ("final", "gain"):
            e[f"to_95_{of}"].append(rollouts_to_reach(cur.valid_steps, cur.valid_ndcg, cur.rollouts_per_step, of=of))
    return out


def sample_efficiency_markdown(eff: dict[str, dict[str, Any]]) -> list[str]:
    """The sample-efficiency table of results.md (empty when no RL run has a valid curve)."""
    if not eff:
        return []
    rows = []
    for name, e in eff.items():
        gains = [f - s for f, s in zip(e["final"], e["start"], strict=True)]
        reached = [r for r in e["to_95_gain"] if r is not None]
        rows.append([
            name, str(len(e["seeds"])), format_mean_ci(*mean_ci95(e["start"])), format_mean_ci(*mean_ci95(e["final"])),
            format_mean_ci(*mean_ci95(gains)), f"{sum(g > 0 for g in gains)}/{len(gains)}",
            format_mean_ci(*mean_ci95([float(r) for r in e["to_95_final"]]), 0),
            format_mean_ci(*mean_ci95([float(r) for r in reached]), 0) if reached else "-",
        ])  # fmt: skip
    header = ["method", "n", "valid NDCG@5 at step 0", "at the last step", "gain", "seeds with a gain",
              "rollouts to 95% of last", "rollouts to 95% of gain (seeds with a gain)"]  # fmt: skip
    return [
        "## Sample efficiency (greedy valid NDCG@5 of the RL runs' own evaluations)",
        "",
        _md_table(header, rows, 1),
        "",
        "Rollouts to 95% of last: the first evaluation at or above 95% of the curve's last value "
        "(0 when the warm start is already there). Rollouts to 95% of gain: the first evaluation at "
        "or above start + 95% of (last - start), over the seeds whose curve ends above its start. "
        "The valid users are the RL config's `eval_limit` (a subset of the valid split).",
        "",
    ]


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align_right_from: int) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "".join("---:|" if i >= align_right_from else "---|" for i in range(len(header)))]  # fmt: skip
    lines += ["| " + " | ".join(c.replace("|", r"\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _metrics_table(summary: dict[str, dict[str, Any]], keys: Sequence[str]) -> str:
    """One row per method: mean ± 95% CI over seeds of each metric, and the test-sample interval."""
    header = ["method", "type", "n", *keys, "±test NDCG@5"]
    rows = []
    for name, e in summary.items():
        m = e["metrics"]
        test_ci = m["ci95/NDCG@5"]["mean"]
        rows.append([name, e["type"], str(e["n"]), *(format_mean_ci(m[k]["mean"], m[k]["ci95"]) for k in keys),
                     "-" if math.isnan(test_ci) else f"{test_ci:.3f}"])  # fmt: skip
    return _md_table(header, rows, 2)


def _examples(summary: dict[str, dict[str, Any]]) -> int:
    return next((int(e["metrics"]["num_examples"]["mean"]) for e in summary.values() if e["n"]), 0)


def extra_markdown(extras: dict[str, dict[str, Any]], keys: Sequence[str]) -> list[str]:
    """One metrics table per extra dataset (``extra_evals``), with the main table's columns."""
    parts: list[str] = []
    for name, x in extras.items():
        parts += [
            f"## Test metrics on `{name}` (`{x['dataset']}`, {x['split']} split)",
            "",
            f"The same models as above, each scored on {_examples(x['methods'])} examples of this dataset "
            "(the fitted scorers: their main evaluation's fit, on the main dataset's train split, "
            "loaded from its scorer.pt, or fitted again with the same seed where none was saved).",
            "",
            _metrics_table(x["methods"], keys),
            "",
        ]
    return parts


def results_markdown(
    cfg: CompareConfig,
    summary: dict[str, dict[str, Any]],
    keys: Sequence[str],
    failures: Sequence[str],
    split: str = "test",
    efficiency: dict[str, dict[str, Any]] | None = None,
    extras: dict[str, dict[str, Any]] | None = None,
) -> str:
    """``results.md``: the metric table (mean ± 95% CI over seeds), one per extra dataset, the
    cost table, the plots."""
    n_test = _examples(summary)
    parts = [
        f"# Comparison: `{cfg.output_dir}`",
        "",
        f"Seeds: {', '.join(map(str, cfg.seeds))}. Test examples per run: {n_test} ({split} split). "
        "Each cell: mean over the method's seeds ± half-width of the 95% confidence interval of that "
        "mean (Student's t, n - 1 degrees of freedom); a single number when n = 1 (deterministic).",
        "",
        "## Test metrics",
        "",
    ]
    parts += [_metrics_table(summary, keys), ""]
    parts += [
        "type: **slate+ranking** = an LLM that writes a slate and then ranks part of it (its ranking is "
        "scored; an invalid output scores 0 and lowers `format/valid_rate`); **scorer** = a baseline that "
        "scores every candidate of the pool, whose top `max_rank` is the ranking (top of the ranked pool; "
        "always valid). `±test NDCG@5`: mean half-width of the 95% CI over test examples (normal "
        "approximation, from each eval's `ci95/NDCG@5`): the noise of the test sample, which the seed "
        "interval does not include.",
        "",
        *extra_markdown(extras or {}, keys),
        "## Budget and cost per run",
        "",
    ]
    rows = []
    for name, e in summary.items():
        c = e["cost"]
        rows.append([
            name, e["kind"], str(e["n"]), budget_text(e["budget"]),
            format_mean_ci(c["train_s"]["mean"], c["train_s"]["ci95"], 1) if c["train_s"]["values"] else "-",
            format_mean_ci(c["eval_s"]["mean"], c["eval_s"]["ci95"], 1),
            format_mean_ci(c["wall_clock_s"]["mean"], c["wall_clock_s"]["ci95"], 1),
            format_mean_ci(c["cpu_s"]["mean"], c["cpu_s"]["ci95"], 1) if c["cpu_s"]["values"] else "-",
            "-" if math.isnan(c["peak_rss_gib_max"]) else f"{c['peak_rss_gib_max']:.2f}",
        ])
    parts += [_md_table(["method", "kind", "n", "budget", "train/sft s", "eval s", "wall-clock s", "CPU s", "peak RSS GiB (max)"], rows, 4), ""]
    parts += [
        "Seconds are wall-clock per run (mean ± 95% CI over seeds), each phase in its own process; "
        "a run that starts from a warm start does not include the warm start's time (that is the "
        "warm start's own row). CPU s: user + system CPU seconds of the run's processes; unlike "
        "wall-clock it is not inflated by other jobs on the machine or by a paused run (with "
        "torch_threads=1 it is close to the wall-clock of an idle machine). Peak RSS: the largest "
        "resident memory of any run's process tree.",
        "",
    ]
    parts += sample_efficiency_markdown(efficiency or {})
    parts += [
        "## Plots",
        "",
        "- `curves_rewards.png`: mean reward of each phase per RL step (moving average), mean over seeds, band = 95% CI",
        "- `curves_valid_ndcg.png`: greedy valid NDCG@5 vs RL step and vs RL training seconds",
        "- `sample_efficiency.png`: greedy valid NDCG@5 vs rollouts generated (step × prompts_per_step × group_size)",
        "",
        "![rewards](curves_rewards.png)",
        "![valid NDCG@5](curves_valid_ndcg.png)",
        "![sample efficiency](sample_efficiency.png)",
        "",
    ]
    if failures:
        parts += ["## Failed runs (not in the tables)", "", *(f"- {f}" for f in failures), ""]
    return "\n".join(parts)


def extra_summaries(specs: Sequence[RunSpec], outcome: CompareOutcome, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per extra dataset: its folder, split and limit, and :func:`summarize` of its records
    (the same per-method shape as ``results.json``'s ``methods``)."""
    out: dict[str, dict[str, Any]] = {}
    for name, ev in (specs[0].extra_evals if specs else {}).items():
        summary = summarize(specs, outcome.extra_records.get(name, {}), keys)
        out[name] = {"dataset": ev.dataset, "split": ev.split, "limit": ev.limit, "methods": summary}
    return out


def write_results(cfg: CompareConfig, specs: Sequence[RunSpec], outcome: CompareOutcome) -> dict[str, Path]:
    """results.md, results.json, runs.csv and the three PNGs in ``cfg.output_dir``."""
    from fgrpo.evaluation.metrics import metric_keys

    out = Path(cfg.output_dir)
    keys = [*metric_keys(tuple(specs[0].eval_cfg.ks)), "format/valid_rate"] if specs else []
    summary = summarize(specs, outcome.records, keys)
    split = specs[0].eval_cfg.split if specs else "test"
    files = {
        "results.md": out / "results.md",
        "results.json": out / "results.json",
        "runs.csv": out / "runs.csv",
    }
    efficiency = sample_efficiency(specs, outcome.records)
    extras = extra_summaries(specs, outcome, keys)
    files["results.md"].write_text(results_markdown(cfg, summary, keys, outcome.failures, split, efficiency, extras))
    files["results.json"].write_text(json.dumps(_finite({
        "experiment": dataclasses.asdict(cfg), "metric_keys": keys, "methods": summary, "sample_efficiency": efficiency,
        "extra_evals": extras, "failures": outcome.failures,
    }), indent=1, default=_json_default))  # fmt: skip
    with files["runs.csv"].open("w", newline="") as fh:
        writer = csv.writer(fh)
        cols = ["method", "kind", "type", "seed", "dataset", "status", "wall_clock_s", "train_s", "eval_s", "cpu_s", "train_cpu_s", "eval_cpu_s",
                "peak_rss_gib", "train_peak_rss_gib", "eval_peak_rss_gib", "rollouts", *keys, "run_dir"]  # fmt: skip
        writer.writerow(cols)
        # one row per run on the main eval ("dataset" empty), then one per run and extra dataset
        # (its name; costs are that evaluation's, the training is the main row's)
        tables = [("", outcome.records), *((name, outcome.extra_records.get(name, {})) for name in extras)]
        for dataset, records in tables:
            for spec in specs:
                rec = records.get((spec.method, spec.seed))
                row: dict[str, Any] = {"method": spec.method, "kind": spec.kind, "type": TYPE_LABEL[spec.producer],
                                       "seed": spec.seed, "dataset": dataset, "status": "done" if rec else "failed or not run",
                                       "rollouts": spec.budget().get("rollouts", ""),
                                       "run_dir": spec.extra_dir(dataset) if dataset else spec.run_dir}  # fmt: skip
                if rec:
                    row.update({k: rec.get(k) for k in cols if k in rec and k not in row})
                    row.update({k: rec["metrics"].get(k) for k in keys})
                writer.writerow(["" if row.get(c) is None else row.get(c) for c in cols])
    files.update(write_plots(cfg, specs, outcome.records))
    return files


def _finite(obj: Any) -> Any:
    """NaN (a method with no finished run) -> null: NaN is not JSON, and readers choke on it."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


