"""``fgrpo compare EXPERIMENT.yaml``: several methods, equal budgets, several seeds, one table.

An experiment file (:class:`CompareConfig`) names the methods to compare and the budget they
share; the runner expands it into (method, seed) runs, executes each in its own subprocess
(``python -m fgrpo train|sft|eval --config <file written here>``), evaluates every run with
the same ``fgrpo eval`` code on the same test examples, and writes ``results.md``,
``results.json``, ``runs.csv`` and three plots to ``output_dir``. How to write one and how
to read the output: ``docs/compare.md``.

Decisions (and why):

* **One subprocess per phase of a run.** Peak resident memory is a per-process quantity:
  measured in-process, the second run would inherit the first one's allocator high-water
  mark. The child's RSS (plus its children's) is polled every ``poll_seconds``; the
  ``RUSAGE_CHILDREN`` maximum is folded in only when it grew during that child, since it is
  the maximum over *every* child waited for so far and would otherwise report an earlier,
  larger run. Wall-clock is per phase (train/sft, then eval) and per run (their sum).
* **Equal budgets by construction.** ``base`` holds the ``fgrpo train`` keys every trained
  method shares (steps, G, prompts per step, learning rate, warm start...); a method lists
  only what makes it that method (``advantage_estimator: grpo``). The budget each method
  actually got (steps x prompts x G = rollouts) is printed in ``results.md``, so a method
  that overrides it is visible rather than silently unequal.
* **Warm starts are runs too.** A ``train`` or ``sft`` method can start from the model an
  earlier ``train``/``sft`` method wrote for the same seed (``warm_start: sft``). The SFT
  row of the table is then exactly the starting point of the RL rows, computed once per
  seed instead of inside every RL run. The RL rows' wall-clock excludes that warm start (it
  is the SFT row's own wall-clock).
* **Seeds.** Trained methods (train, sft) run once per seed, with the seed passed as the
  command's ``seed`` (data order, sampling, initialization). Scorers that use randomness
  (random, sasrec, gru4rec) run once per seed too; deterministic ones (popularity, bm25,
  dense) and ``model`` evaluations (greedy decoding of a fixed folder) run once, with the
  first seed; their row shows ``n = 1`` and no interval. A method's ``seeds`` overrides this.
* **One test set.** The toy task's test split depends on ``fgrpo eval``'s ``seed``; varying
  it with the random scorer's seed would change the test set between rows. So the toy
  split is written once to ``output_dir/data/`` (exactly what ``fgrpo eval dataset=toy
  seed=0`` scores) and every run reads that folder. Prepared datasets are folders already.
* **Mean ± 95% CI over seeds** with Student's t (n - 1 degrees of freedom, table for n <= 31,
  Cornish-Fisher expansion beyond): with 3 seeds the half-width is 4.30 standard errors,
  so the interval is honest about how little 3 seeds pin down. It measures training
  randomness only, not test-sample noise: that one is ``ci95/<metric>`` of each eval.
* **Resumable.** A run whose folder holds its final ``metrics.json`` is skipped; a run whose
  train phase finished (``train_phase.json``) only re-runs its evaluation; anything else is
  started over from an empty folder, so its wall-clock and memory are those of one
  uninterrupted run. Both files carry a fingerprint of the run's resolved configs (and its
  warm start's), so editing the experiment redoes the runs it changes instead of reusing
  stale numbers.
* **Curves from metrics.jsonl.** Rewards per phase vs step (a trailing moving average),
  greedy valid NDCG@5 vs step and vs training seconds (the sum of ``step_time_s``: RL
  steps only, not validation or warm-up), and vs rollouts generated (step x
  prompts_per_step x group_size). Each curve is the mean over seeds with a 95% CI band.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fgrpo.config import (
    ConfigError,
    build_config,
    check_values,
    option,
    parse_overrides,
    read_yaml_mapping,
    save_config,
)
from fgrpo.evaluation.command import EvalConfig
from fgrpo.trainer.config import DataOptions, ModelOptions, SFTConfig, TrainConfig

# ------------------------------------------------------------------ statistics

# Two-sided 95% Student-t quantiles t_{0.975, dof} for dof = 1..30 (scipy.stats.t.ppf, 4 d.p.);
# a table keeps scipy out of the dependencies.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z975 = 1.959963984540054


def t_quantile_975(dof: int) -> float:
    """t_{0.975} with ``dof`` degrees of freedom (the 95% two-sided critical value)."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {dof}")
    if dof <= len(_T975):
        return _T975[dof - 1]
    # Cornish-Fisher expansion of t around the normal quantile: < 1e-7 off for dof > 30
    z, d = _Z975, float(dof)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / d + g2 / d**2 + g3 / d**3 + g4 / d**4


def mean_ci95(values: Sequence[float]) -> tuple[float, float | None]:
    """(mean, half-width of the 95% t interval of the mean); half-width None for n < 2."""
    n = len(values)
    if n == 0:
        return math.nan, None
    mean = sum(values) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t_quantile_975(n - 1) * sd / math.sqrt(n)


def format_mean_ci(mean: float, half: float | None, digits: int = 3) -> str:
    """``"0.512 ± 0.031"``; just the mean when there is no interval (one run)."""
    if mean is None or math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f}" if half is None else f"{mean:.{digits}f} ± {half:.{digits}f}"


# ------------------------------------------------------------------ config

Kind = Literal["train", "sft", "scorer", "model", "zeroshot", "decoupled_sft"]
TRAINED_KINDS = ("train", "sft")  # one training run whose model a later method can start from
SEEDED_KINDS = (*TRAINED_KINDS, "decoupled_sft")  # trained per seed
SEEDED_SCORERS = ("random", "sasrec", "gru4rec")  # their output changes with the seed
SET_BY_COMPARE = ("seed", "output_dir")  # one per run, chosen by the runner
# what an `sft` method inherits from `base`: the model and the data, not the RL optimizer keys
# (max_steps, learning_rate... mean something else in SFTConfig)
SFT_FROM_BASE = tuple(f.name for f in dataclasses.fields(ModelOptions)) + tuple(f.name for f in dataclasses.fields(DataOptions))
# what every evaluation inherits from `base`, so it decodes and scores like training did
EVAL_FROM_BASE = ("dataset", "max_slate", "max_rank", "toy_pool_size", "toy_max_relevant", "torch_threads", "max_new_tokens", "dtype",
                  "skip_invalid_rows", "prompt_overflow", "prompt_context")
TOY_EVAL_SEED = 0  # the toy test split all runs share: `fgrpo eval dataset=toy seed=0`
# config keys that do not change what a run computes (left out of its fingerprint)
BOOKKEEPING = ("torch_threads", "log_every", "save_every", "keep_last", "tensorboard", "batch_size", "dense_batch_size")
# keys added after runs were recorded, left out of the fingerprint at their default: adding
# them changed nothing those runs computed (eval_constrained: only the in-training valid curve), so
# their finished results stay valid
LATER_KEYS: dict[str, Any] = {"target": "both", "prompt_style": None, "selector": None, "ranker": None, "eval_constrained": None}


@dataclass
class MethodSpec:
    """One entry of ``methods:`` in an experiment file."""

    name: str = option("", "Row name in the results (unique); a sweep appends [key=value, ...].")
    kind: Kind = option("train", "train: `fgrpo train` then eval; sft: `fgrpo sft` then eval; scorer: `fgrpo eval method=...` (random, popularity, bm25, dense, sasrec, gru4rec); model: evaluate an existing model folder; zeroshot: an untrained model with the zero-shot prompt, one answer (method zeroshot) or two (method two_step); decoupled_sft: `fgrpo sft target=slate` and `target=rank` (each with the same SFT budget), then eval method=two_step of the pair.")
    overrides: dict[str, Any] = option({}, "Keys of the command's config: TrainConfig (train, over `base`), SFTConfig (sft and decoupled_sft, over the model/data keys of `base`), EvalConfig (scorer: `method`, default the name; model: `model`, the folder; zeroshot: `model`, default base's, and `method`, zeroshot or two_step).")
    sweep: dict[str, Any] = option({}, "key -> list of values: one method per combination (cartesian product), e.g. {rank_weight: [0.5, 1, 2]}.")
    warm_start: str | None = option(None, "train/sft/decoupled_sft only: name of an earlier train/sft method whose model (same seed) this one starts from (decoupled_sft: both of its models).")
    seeds: list[int] | None = option(None, "Seeds of this method (null: all seeds for train/sft/decoupled_sft and the seeded scorers random/sasrec/gru4rec; the first seed only for deterministic ones).")
    eval: dict[str, Any] = option({}, "EvalConfig keys for this method's evaluation, over the experiment's `eval`.")


@dataclass
class CompareConfig:
    """``fgrpo compare``: methods x seeds with equal budgets, one results table and plots."""

    output_dir: str = option("runs/compare", "Where runs/<method>/seed<k>/, results.md, results.json, runs.csv and the plots are written.")
    seeds: list[int] = option([0, 1, 2], "Training seeds; each trained (and seeded scorer) method runs once per seed.")
    base: dict[str, Any] = option({}, "`fgrpo train` keys shared by every trained method (the equal budget: max_steps, group_size, prompts_per_step, learning_rate, model...); its model/data keys also reach sft methods and evaluations.")
    methods: list[dict[str, Any]] = option([], "The methods: a list of {name, kind, overrides, sweep, warm_start, seeds, eval} (see docs/compare.md).")
    eval: dict[str, Any] = option({}, "`fgrpo eval` keys for every evaluation (split, limit, max_new_tokens, batch_size, ...); dataset, max_slate/max_rank and toy keys come from `base`.")
    poll_seconds: float = option(0.2, "How often a run's resident memory is sampled (seconds).")
    reward_smoothing: int = option(0, "Moving-average window (steps) of the reward curves (0: about 1/20 of the steps).")
    stop_on_failure: bool = option(False, "Stop at the first failed run (false: record it, go on, exit 1 at the end).")

    def validate(self) -> None:
        if not self.seeds:
            raise ValueError("key 'seeds' must list at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"key 'seeds' has repeats: {self.seeds}")
        if not self.methods:
            raise ValueError("key 'methods' must list at least one method")
        if self.poll_seconds <= 0:
            raise ValueError("key 'poll_seconds' must be > 0")
        if self.reward_smoothing < 0:
            raise ValueError("key 'reward_smoothing' must be >= 0")
        expand_runs(self)  # every run's command config is built now, so a typo fails before hours of training


@dataclass
class RunSpec:
    """One (method, seed) run: the configs of its commands, fully resolved."""

    method: str  # row name (with the sweep suffix)
    kind: str
    seed: int
    run_dir: Path
    producer: bool  # writes a slate and a ranking (an LLM) rather than scoring the pool
    command: str | None  # "train" | "sft" | None (evaluation only)
    train_cfg: TrainConfig | SFTConfig | None
    eval_cfg: EvalConfig
    warm_start: Path | None = None  # model folder written by an earlier run
    toy_source: EvalConfig | None = None  # set when eval_cfg.dataset must first be written from the toy task
    warm_from: RunSpec | None = None  # the run that writes warm_start
    ranker_cfg: SFTConfig | None = None  # decoupled_sft: the ranker's SFT (train_cfg is the selector's)

    def train_phases(self) -> list[tuple[str, TrainConfig | SFTConfig, str]]:
        """(command, config, log/config file stem) of each training subprocess, in order."""
        if self.command is None or self.train_cfg is None:
            return []
        phases: list[tuple[str, TrainConfig | SFTConfig, str]] = [(self.command, self.train_cfg, self.command)]
        if self.ranker_cfg is not None:
            phases.append(("sft", self.ranker_cfg, "sft_ranker"))
        return phases

    @property
    def marker(self) -> Path:
        return self.run_dir / "metrics.json"

    def digest(self, part: Literal["train", "run"] = "run") -> str:
        """Fingerprint of what the run computes ("train": its training config only). A finished
        run whose experiment entry was edited since (say base.max_steps) is redone, not reused;
        keys that only change bookkeeping are left out, so changing them reuses the results."""
        configs = [self.train_cfg, self.ranker_cfg] if part == "train" else [self.train_cfg, self.ranker_cfg, self.eval_cfg]
        values: list[Any] = [
            {k: v for k, v in dataclasses.asdict(c).items() if k not in BOOKKEEPING and not (k in LATER_KEYS and v == LATER_KEYS[k])}
            for c in configs if c is not None
        ]  # fmt: skip
        if self.warm_from is not None:  # a redone warm start makes the runs from it stale too
            values.append(self.warm_from.digest("train"))
        return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def done(self) -> bool:
        """Finished with the current config (a marker from before digests were recorded counts)."""
        if not self.marker.is_file():
            return False
        recorded = json.loads(self.marker.read_text()).get("config_digest")
        return recorded in (None, self.digest())

    def budget(self) -> dict[str, Any]:
        c = self.train_cfg
        if isinstance(c, TrainConfig):
            return {"rl_steps": c.max_steps, "prompts_per_step": c.prompts_per_step, "group_size": c.group_size,
                    "rollouts": c.max_steps * c.prompts_per_step * c.group_size, "sft_warmup_steps": c.sft_warmup_steps,
                    "warm_start": self.warm_start is not None}  # fmt: skip
        if isinstance(c, SFTConfig):
            return {"sft_steps": c.max_steps, "batch_size": c.batch_size, "examples": c.max_steps * c.batch_size,
                    "sft_models": 1 if self.ranker_cfg is None else 2, "warm_start": self.warm_start is not None}  # fmt: skip
        return {}


def budget_text(budget: dict[str, Any]) -> str:
    if "rollouts" in budget:
        text = f"{budget['rl_steps']} steps × {budget['prompts_per_step']} prompts × G={budget['group_size']} = {budget['rollouts']:,} rollouts"
        if budget.get("sft_warmup_steps"):
            text += f" (+{budget['sft_warmup_steps']} SFT warm-up steps)"
    elif "examples" in budget:
        text = f"{budget['sft_steps']} SFT steps × {budget['batch_size']} = {budget['examples']:,} examples"
        if budget.get("sft_models", 1) > 1:  # decoupled_sft: each of its models got that budget
            text = f"{budget['sft_models']} models × ({text})"
    else:
        return "-"
    return text + (" from the warm start" if budget.get("warm_start") else "")


def _fmt_value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (bool, type(None))) else str(v)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", name).strip("_") or "method"


def _forbid(values: dict[str, Any], keys: Sequence[str], where: str, why: str) -> None:
    for key in keys:
        if key in values:
            raise ConfigError(f"{where}: key '{key}' {why}")


def _sweep_combos(sweep: dict[str, Any], where: str) -> list[dict[str, Any]]:
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.sweep: key '{key}' needs a non-empty list of values, got {values!r}")
    keys = list(sweep)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(sweep[k] for k in keys))] or [{}]


def _default_seeds(kind: str, scorer: str | None, seeds: list[int]) -> list[int]:
    if kind in SEEDED_KINDS or (kind == "scorer" and scorer in SEEDED_SCORERS):
        return list(seeds)
    return seeds[:1]  # deterministic: another seed would only repeat the same numbers


def expand_runs(cfg: CompareConfig) -> list[RunSpec]:
    """Every (method, seed) run in execution order: seed by seed, methods in file order (so a
    warm start always exists before the runs that start from it, and an interrupted compare
    already has every method for the first seeds)."""
    out_dir = Path(cfg.output_dir)
    _forbid(cfg.base, SET_BY_COMPARE, "base", "is set by compare per run (seeds: / output_dir:)")
    base_values = check_values(TrainConfig, cfg.base, "base")
    base_cfg = build_config(TrainConfig, base_values, "base")
    _forbid(cfg.eval, (*SET_BY_COMPARE, "model", "method"), "eval", "is set by compare per run")
    eval_top = check_values(EvalConfig, cfg.eval, "eval")

    specs: dict[str, tuple[MethodSpec, list[int], int]] = {}  # base name -> (spec, seeds, n expanded)
    per_method: list[list[RunSpec]] = []  # expanded methods, each a list of runs
    names: set[str] = set()
    trained_runs: dict[tuple[str, int], RunSpec] = {}  # (method, seed) -> run, to link warm starts
    for i, entry in enumerate(cfg.methods):
        label = f"methods[{i}]"
        m = build_config(MethodSpec, entry, label)
        if not m.name:
            raise ConfigError(f"{label}: key 'name' is required")
        label = f"methods[{i}] '{m.name}'"
        if m.name in specs:
            raise ConfigError(f"{label}: key 'name' repeats an earlier method")
        cls: type = {"train": TrainConfig, "sft": SFTConfig, "decoupled_sft": SFTConfig}.get(m.kind, EvalConfig)
        _forbid(m.overrides, SET_BY_COMPARE, f"{label}.overrides", "is set by compare per run")
        _forbid(m.sweep, SET_BY_COMPARE, f"{label}.sweep", "is set by compare per run")
        _forbid(m.eval, (*SET_BY_COMPARE, "model", "method"), f"{label}.eval", "is set by compare per run")
        overrides = check_values(cls, m.overrides, f"{label}.overrides")
        check_values(cls, {k: (v[0] if isinstance(v, list) and v else v) for k, v in m.sweep.items()}, f"{label}.sweep")
        eval_method = check_values(EvalConfig, m.eval, f"{label}.eval")
        scorer = None
        if m.kind == "scorer":
            scorer = overrides.setdefault("method", m.name)
            if scorer == "model":
                raise ConfigError(f"{label}.overrides: key 'method' of a scorer cannot be 'model' (use kind: model)")
        if m.kind == "model":
            if "model" not in overrides and "model" not in m.sweep:
                raise ConfigError(f"{label}.overrides: key 'model' is required for kind model (the folder to evaluate)")
            if overrides.setdefault("method", "model") != "model":
                raise ConfigError(f"{label}.overrides: key 'method' must be 'model' for kind model (use kind: scorer)")
        if m.kind == "zeroshot":
            overrides.setdefault("model", base_cfg.model)
            if overrides.setdefault("method", "zeroshot") not in ("zeroshot", "two_step"):
                raise ConfigError(f"{label}.overrides: key 'method' must be 'zeroshot' or 'two_step' for kind zeroshot")
            overrides.setdefault("prompt_style", "zeroshot")  # two_step too: an untrained model needs the worked example
        if m.kind == "decoupled_sft":  # its two halves are the two targets
            _forbid(m.overrides, ("target",), f"{label}.overrides", "is set by kind decoupled_sft (slate, then rank)")
            _forbid(m.sweep, ("target",), f"{label}.sweep", "is set by kind decoupled_sft (slate, then rank)")
        seeds = list(m.seeds) if m.seeds is not None else _default_seeds(m.kind, scorer, cfg.seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ConfigError(f"{label}: key 'seeds' must be a non-empty list without repeats, got {seeds}")
        warm: MethodSpec | None = None
        if m.warm_start is not None:
            if m.kind not in SEEDED_KINDS:
                raise ConfigError(f"{label}: key 'warm_start' is only for train, sft and decoupled_sft methods")
            if m.warm_start not in specs:
                raise ConfigError(f"{label}: key 'warm_start' names '{m.warm_start}', which is not an earlier method")
            warm, warm_seeds, n_warm = specs[m.warm_start]
            if warm.kind not in TRAINED_KINDS or n_warm != 1:
                raise ConfigError(f"{label}: key 'warm_start': '{m.warm_start}' must be one train or sft method (not a scorer, model or sweep)")
            if "model" in overrides or "model" in m.sweep:
                raise ConfigError(f"{label}: keys 'warm_start' and 'model' both set the starting model")
            if missing := sorted(set(seeds) - set(warm_seeds)):
                raise ConfigError(f"{label}: key 'warm_start': '{m.warm_start}' does not run seed(s) {missing}")
        combos = _sweep_combos(m.sweep, label)
        specs[m.name] = (m, seeds, len(combos))
        for combo in combos:
            display = m.name + ("[" + ", ".join(f"{k}={_fmt_value(v)}" for k, v in combo.items()) + "]" if combo else "")
            if display in names:
                raise ConfigError(f"{label}: key 'name': '{display}' is already a method")
            names.add(display)
            runs = []
            for seed in seeds:
                run_dir = out_dir / "runs" / _slug(display) / f"seed{seed}"
                warm_dir = out_dir / "runs" / _slug(m.warm_start) / f"seed{seed}" / "train" / "model" if warm else None
                where = f"{label}" + (f" sweep {combo}" if combo else "")
                train_cfg: TrainConfig | SFTConfig | None = None
                ranker_cfg: SFTConfig | None = None
                values = {**overrides, **combo}
                if m.kind == "train":
                    merged = {**base_values, **values, "seed": seed, "output_dir": str(run_dir / "train")}
                    if warm_dir is not None:
                        merged["model"] = str(warm_dir)
                    train_cfg = build_config(TrainConfig, merged, where)
                elif m.kind in ("sft", "decoupled_sft"):
                    shared = {k: v for k, v in base_values.items() if k in SFT_FROM_BASE}
                    merged = {**shared, **values, "seed": seed, "output_dir": str(run_dir / "train")}
                    if warm_dir is not None:
                        merged["model"] = str(warm_dir)
                    if m.kind == "decoupled_sft":  # equal budget: each half gets the same SFT keys
                        merged["target"] = "slate"
                        ranker_cfg = build_config(SFTConfig, {**merged, "target": "rank", "output_dir": str(run_dir / "train_ranker")}, where)
                    train_cfg = build_config(SFTConfig, merged, where)
                ev = {k: getattr(base_cfg, k) for k in EVAL_FROM_BASE}
                if train_cfg is not None:  # decode like this run was trained to (its own max_new_tokens, limits)
                    ev.update({k: getattr(train_cfg, k) for k in EVAL_FROM_BASE if hasattr(train_cfg, k)})
                ev.update(eval_top)
                ev.update(eval_method)
                if m.kind in ("scorer", "model", "zeroshot"):
                    ev.update(values)
                elif m.kind == "decoupled_sft":
                    ev.update({"method": "two_step", "model": str(run_dir / "train" / "model"),
                               "selector": str(run_dir / "train" / "model"), "ranker": str(run_dir / "train_ranker" / "model")})  # fmt: skip
                else:
                    ev.update({"method": "model", "model": str(run_dir / "train" / "model")})
                ev.update({"seed": seed, "output_dir": str(run_dir / "eval")})
                eval_cfg = build_config(EvalConfig, ev, f"{where} (evaluation)")
                toy_source = None
                if eval_cfg.dataset == "toy":  # one shared test set: see the module docstring
                    toy_source = dataclasses.replace(eval_cfg, seed=TOY_EVAL_SEED, method="random", output_dir="")
                    folder = out_dir / "data" / (
                        f"toy_{eval_cfg.split}_n{eval_cfg.limit or 'all'}_p{eval_cfg.toy_pool_size}_r{eval_cfg.toy_max_relevant}"
                    )
                    eval_cfg = dataclasses.replace(eval_cfg, dataset=str(folder))
                runs.append(RunSpec(
                    method=display, kind=m.kind, seed=seed, run_dir=run_dir, producer=m.kind != "scorer",
                    command={"train": "train", "sft": "sft", "decoupled_sft": "sft"}.get(m.kind), train_cfg=train_cfg,
                    eval_cfg=eval_cfg, warm_start=warm_dir, toy_source=toy_source,
                    warm_from=trained_runs[(m.warm_start, seed)] if m.warm_start else None, ranker_cfg=ranker_cfg,
                ))  # fmt: skip
                trained_runs[(display, seed)] = runs[-1]
            per_method.append(runs)
    order = list(dict.fromkeys([*cfg.seeds, *(r.seed for runs in per_method for r in runs)]))
    return [r for seed in order for runs in per_method for r in runs if r.seed == seed]


def load_compare_config(path: str | Path, overrides: list[str] | None = None) -> CompareConfig:
    """The experiment file plus ``key=value`` overrides; ``base.KEY=V`` and ``eval.KEY=V`` set
    one key inside those mappings (e.g. ``base.max_steps=3`` for a quick try)."""
    top: list[str] = []
    nested: dict[str, dict[str, Any]] = {"base": {}, "eval": {}}
    for item in overrides or []:
        head, dot, _rest = item.split("=", 1)[0].strip().lstrip("-").partition(".")
        if not dot:
            top.append(item)
        elif head in nested:
            nested[head].update(parse_overrides([item.split(".", 1)[1]]))
        else:
            raise ConfigError(f"override '{item}': only base.KEY=... and eval.KEY=... reach inside the experiment")
    path = Path(path)
    loaded = read_yaml_mapping(path)
    values = dict(check_values(CompareConfig, loaded, str(path)))  # names the file if its own key is wrong
    values.update(check_values(CompareConfig, parse_overrides(top), "command line"))
    for head, extra in nested.items():
        if extra:  # merged key by key, so base.max_steps=3 keeps the rest of base
            values[head] = {**values.get(head, {}), **extra}
    where = f"{path} + command line" if overrides else str(path)
    return build_config(CompareConfig, values, where)


# ------------------------------------------------------------------ running


class RunFailed(RuntimeError):
    """A run's command exited non-zero or did not write what it should have."""


@dataclass
class Phase:
    """One subprocess: its wall-clock, CPU time, peak resident memory and exit code."""

    seconds: float
    peak_rss_bytes: int
    returncode: int
    cpu_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3), "cpu_s": round(self.cpu_seconds, 3),
                "peak_rss_gib": round(self.peak_rss_bytes / 2**30, 4), "returncode": self.returncode}  # fmt: skip


def _tree_rss(proc: Any) -> int:
    """Resident bytes of a process and all its descendants (those gone meanwhile count 0)."""
    import psutil

    total = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in members:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_measured(cmd: Sequence[str], log_path: Path, poll_seconds: float = 0.2) -> Phase:
    """Run ``cmd`` with output to ``log_path``; sample its tree's RSS until it exits."""
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = 0
    t0 = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT)
        try:
            watched = psutil.Process(proc.pid)
            while True:
                peak = max(peak, _tree_rss(watched))
                try:
                    proc.wait(timeout=poll_seconds)  # returns as soon as the child exits: exact wall-clock
                    break
                except subprocess.TimeoutExpired:
                    continue
        except psutil.NoSuchProcess:  # exited before the first sample
            proc.wait()
        except BaseException:  # Ctrl-C or a kill of the runner: do not leave the child behind
            proc.terminate()  # fgrpo train saves a checkpoint on SIGTERM, then exits
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if after.ru_maxrss > before.ru_maxrss:  # the max over all children grew, so this child set it (KiB on Linux)
        peak = max(peak, after.ru_maxrss * 1024)
    # CPU seconds of this child (and the descendants it waited for): unlike wall-clock, not
    # inflated by other jobs on the machine or by the process being stopped (SIGSTOP) meanwhile
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Phase(seconds, peak, proc.returncode, cpu)


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)  # a kill mid-write never leaves a half marker that would skip the run


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def materialize_toy(spec: RunSpec) -> None:
    """Write the toy test split this run is scored on (once; every run reads the same files)."""
    if spec.toy_source is None:
        return
    folder = Path(spec.eval_cfg.dataset)
    split_file = folder / f"{spec.eval_cfg.split}.jsonl"
    if split_file.is_file():
        return
    from fgrpo.data.schema import write_jsonl
    from fgrpo.evaluation.command import load_split

    examples, train = load_split(spec.toy_source)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if spec.eval_cfg.split != "train":  # popularity/sasrec/gru4rec fit on it
        write_jsonl(train, tmp / "train.jsonl")
    write_jsonl(examples, tmp / f"{spec.eval_cfg.split}.jsonl")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def _fgrpo(command: str, config_file: Path) -> list[str]:
    return [sys.executable, "-m", "fgrpo", command, "--config", str(config_file)]


def run_one(spec: RunSpec, poll_seconds: float = 0.2) -> dict[str, Any]:
    """Execute one run (train/sft phase if any, then eval) and write its ``metrics.json``."""
    if spec.done:
        return json.loads(spec.marker.read_text())
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "method": spec.method, "kind": spec.kind, "seed": spec.seed, "producer": spec.producer,
        "budget": spec.budget(), "run_dir": str(spec.run_dir), "config_digest": spec.digest(),
    }  # fmt: skip
    train_phase: dict[str, Any] | None = None
    if phases := spec.train_phases():
        phase_file = spec.run_dir / "train_phase.json"
        model_dirs = [Path(c.output_dir) / "model" for _, c, _ in phases]
        trained = json.loads(phase_file.read_text()) if phase_file.is_file() else None
        if trained and trained.get("config_digest") in (None, spec.digest("train")) and all((d / "config.json").is_file() for d in model_dirs):
            train_phase = trained  # trained before an interruption: only re-evaluate
        else:
            if spec.warm_start is not None and not (spec.warm_start / "config.json").is_file():
                raise RunFailed(f"{spec.method} seed {spec.seed}: warm start {spec.warm_start} does not exist (its run failed?)")
            done: list[Phase] = []
            for (command, train_cfg, stem), model_dir in zip(phases, model_dirs, strict=True):
                shutil.rmtree(train_cfg.output_dir, ignore_errors=True)  # a partial run starts over: clean timings
                config_file = spec.run_dir / f"{stem}.yaml"
                save_config(train_cfg, config_file)
                log = spec.run_dir / f"{stem}.log"
                phase = run_measured(_fgrpo(command, config_file), log, poll_seconds)
                if phase.returncode != 0 or not (model_dir / "config.json").is_file():
                    raise RunFailed(f"{spec.method} seed {spec.seed}: fgrpo {command} exited {phase.returncode} "
                                    f"without {model_dir}; log {log}:\n{_tail(log)}")  # fmt: skip
                done.append(phase)
            # decoupled_sft trains its two models one after the other: their times add up
            total = Phase(sum(p.seconds for p in done), max(p.peak_rss_bytes for p in done), 0, sum(p.cpu_seconds for p in done))
            train_phase = {**total.as_dict(), "config_digest": spec.digest("train")}
            _write_json_atomic(phase_file, train_phase)
    materialize_toy(spec)
    shutil.rmtree(spec.eval_cfg.output_dir, ignore_errors=True)
    config_file = spec.run_dir / "eval.yaml"
    save_config(spec.eval_cfg, config_file)
    log = spec.run_dir / "eval.log"
    phase = run_measured(_fgrpo("eval", config_file), log, poll_seconds)
    metrics_file = Path(spec.eval_cfg.output_dir) / "metrics.json"
    if phase.returncode != 0 or not metrics_file.is_file():
        raise RunFailed(f"{spec.method} seed {spec.seed}: fgrpo eval exited {phase.returncode}; log {log}:\n{_tail(log)}")
    eval_phase = phase.as_dict()
    train_s = train_phase["seconds"] if train_phase else 0.0
    train_cpu = (train_phase or {}).get("cpu_s")  # None in a train_phase.json written before CPU was measured
    record.update({
        "train_s": train_phase["seconds"] if train_phase else None,
        "train_peak_rss_gib": train_phase["peak_rss_gib"] if train_phase else None,
        "eval_s": eval_phase["seconds"],
        "eval_peak_rss_gib": eval_phase["peak_rss_gib"],
        "wall_clock_s": round(train_s + eval_phase["seconds"], 3),
        "train_cpu_s": train_cpu,
        "eval_cpu_s": eval_phase["cpu_s"],
        "cpu_s": round((train_cpu or 0.0) + eval_phase["cpu_s"], 3),
        "peak_rss_gib": max(eval_phase["peak_rss_gib"], train_phase["peak_rss_gib"] if train_phase else 0.0),
        "metrics": json.loads(metrics_file.read_text()),
    })
    _write_json_atomic(spec.marker, record)
    return record


@dataclass
class CompareOutcome:
    records: dict[tuple[str, int], dict[str, Any]]  # (method, seed) -> the run's metrics.json
    failures: list[str] = field(default_factory=list)
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
    return "\n".join(lines)


def run_compare(cfg: CompareConfig, echo: Callable[[str], None] = print) -> CompareOutcome:
    """Run every (method, seed) not done yet, then write the results and the plots."""
    specs = expand_runs(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "experiment.yaml")
    outcome = CompareOutcome({})
    # SIGTERM (a scheduler, `kill`) becomes KeyboardInterrupt, so run_measured stops the running
    # child too instead of leaving it orphaned; restored on the way out
    previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() else None
    try:
        _run_all(cfg, specs, outcome, echo)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    outcome.files = write_results(cfg, specs, outcome)
    return outcome


def report_compare(cfg: CompareConfig) -> CompareOutcome:
    """Write the results and plots from the runs finished so far; run nothing (a look at a
    comparison still running elsewhere, or at one stopped half-way)."""
    specs = expand_runs(cfg)
    outcome = CompareOutcome({(s.method, s.seed): json.loads(s.marker.read_text()) for s in specs if s.done})
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    outcome.files = write_results(cfg, specs, outcome)
    return outcome


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _run_all(cfg: CompareConfig, specs: Sequence[RunSpec], outcome: CompareOutcome, echo: Callable[[str], None]) -> None:
    out = Path(cfg.output_dir)
    todo = sum(not s.done for s in specs)
    echo(f"compare: {len(specs)} runs, {len(specs) - todo} already done -> {out}")
    for i, spec in enumerate(specs, start=1):
        head = f"[{i}/{len(specs)}] {spec.method} seed {spec.seed}"
        if spec.done:
            outcome.records[(spec.method, spec.seed)] = json.loads(spec.marker.read_text())
            echo(f"{head}: done before, skipped")
            continue
        trained = (spec.run_dir / "train_phase.json").is_file()  # interrupted between training and eval
        echo(f"{head}: running ({'trained before; evaluating only' if trained else budget_text(spec.budget())})")
        try:
            rec = run_one(spec, cfg.poll_seconds)
        except RunFailed as e:
            outcome.failures.append(str(e).splitlines()[0])
            echo(f"{head}: FAILED: {e}")
            if cfg.stop_on_failure:
                break
            continue
        outcome.records[(spec.method, spec.seed)] = rec
        ndcg = rec["metrics"].get("NDCG@5", math.nan)
        echo(f"{head}: {rec['wall_clock_s']:.1f} s, peak RSS {rec['peak_rss_gib']:.2f} GiB, test NDCG@5 {ndcg:.3f}")


# ------------------------------------------------------------------ aggregation

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


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align_right_from: int) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "".join("---:|" if i >= align_right_from else "---|" for i in range(len(header)))]  # fmt: skip
    lines += ["| " + " | ".join(c.replace("|", r"\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def results_markdown(
    cfg: CompareConfig, summary: dict[str, dict[str, Any]], keys: Sequence[str], failures: Sequence[str], split: str = "test"
) -> str:
    """``results.md``: the metric table (mean ± 95% CI over seeds), the cost table, the plots."""
    n_test = next((int(e["metrics"]["num_examples"]["mean"]) for e in summary.values() if e["n"]), 0)
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
    header = ["method", "type", "n", *keys, "±test NDCG@5"]
    rows = []
    for name, e in summary.items():
        m = e["metrics"]
        test_ci = m["ci95/NDCG@5"]["mean"]
        rows.append([name, e["type"], str(e["n"]), *(format_mean_ci(m[k]["mean"], m[k]["ci95"]) for k in keys),
                     "-" if math.isnan(test_ci) else f"{test_ci:.3f}"])  # fmt: skip
    parts += [_md_table(header, rows, 2), ""]
    parts += [
        "type: **slate+ranking** = an LLM that writes a slate and then ranks part of it (its ranking is "
        "scored; an invalid output scores 0 and lowers `format/valid_rate`); **scorer** = a baseline that "
        "scores every candidate of the pool, whose top `max_rank` is the ranking (top of the ranked pool; "
        "always valid). `±test NDCG@5`: mean half-width of the 95% CI over test examples (normal "
        "approximation, from each eval's `ci95/NDCG@5`): the noise of the test sample, which the seed "
        "interval does not include.",
        "",
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
    files["results.md"].write_text(results_markdown(cfg, summary, keys, outcome.failures, split))
    files["results.json"].write_text(json.dumps(_finite({
        "experiment": dataclasses.asdict(cfg), "metric_keys": keys, "methods": summary,
        "failures": outcome.failures,
    }), indent=1, default=_json_default))  # fmt: skip
    with files["runs.csv"].open("w", newline="") as fh:
        writer = csv.writer(fh)
        cols = ["method", "kind", "type", "seed", "status", "wall_clock_s", "train_s", "eval_s", "cpu_s", "train_cpu_s", "eval_cpu_s", "peak_rss_gib",
                "train_peak_rss_gib", "eval_peak_rss_gib", "rollouts", *keys, "run_dir"]  # fmt: skip
        writer.writerow(cols)
        for spec in specs:
            rec = outcome.records.get((spec.method, spec.seed))
            row: dict[str, Any] = {"method": spec.method, "kind": spec.kind, "type": TYPE_LABEL[spec.producer],
                                   "seed": spec.seed, "status": "done" if rec else "failed or not run",
                                   "rollouts": spec.budget().get("rollouts", ""), "run_dir": spec.run_dir}  # fmt: skip
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


# ------------------------------------------------------------------ curves


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
