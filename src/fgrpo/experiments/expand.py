"""An experiment into its (method, seed) runs: :func:`expand_runs`.

Each method kind has one :class:`KindRule` in :data:`KINDS`: which command config its
``overrides`` are checked against, which extra checks they need, how its training configs
are built, and what its evaluation scores. The loop in :func:`expand_runs` is the same for
every kind: names, sweeps, seeds and warm starts.

* **Warm starts are runs too.** A ``train`` or ``sft`` method can start from the model an
  earlier ``train``/``sft`` method wrote for the same seed (``warm_start: sft``). The SFT row
  of the table is then exactly the starting point of the RL rows, computed once per seed
  instead of inside every RL run. The RL rows' wall-clock excludes that warm start (it is
  the SFT row's own wall-clock).
* **Seeds.** Trained methods (train, sft) run once per seed, with the seed passed as the
  command's ``seed`` (data order, sampling, initialization). Scorers that use randomness
  (random, sasrec, gru4rec) run once per seed too; deterministic ones (popularity, bm25,
  dense) and ``model`` evaluations (greedy decoding of a fixed folder) run once, with the
  first seed; their row shows ``n = 1`` and no interval. A method's ``seeds`` overrides this.
  ``{seed}`` in a string override becomes the run's seed (:func:`with_seed`): an input built
  per seed outside the compare, such as a backbone pretrained from that seed's SASRec.
* **One test set.** The toy task's test split depends on ``fgrpo eval``'s ``seed``; varying
  it with the random scorer's seed would change the test set between rows. So the toy split
  is written once to ``output_dir/data/`` (exactly what ``fgrpo eval dataset=toy seed=0``
  scores) and every run reads that folder. Prepared datasets are folders already.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgrpo.config import ConfigError, build_config, check_values
from fgrpo.config.commands import (
    CompareConfig,
    DataOptions,
    EvalConfig,
    MethodSpec,
    ModelOptions,
    SFTConfig,
    TrainConfig,
)
from fgrpo.experiments.extra import extra_eval_config, extra_eval_specs
from fgrpo.experiments.spec import RunSpec

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

Trained = tuple[TrainConfig | SFTConfig | None, SFTConfig | None]  # (train_cfg, ranker_cfg)


@dataclass(frozen=True)
class RunPlace:
    """Where one run of a method writes, and what it starts from."""

    seed: int
    run_dir: Path
    data_dir: Path  # the experiment's data/ folder (the toy test split every run reads)
    warm_dir: Path | None  # the warm start's model folder (None: the configured model)
    where: str  # names the method (and sweep combination) in error messages


# ------------------------------------------------------------------ per-kind rules


def _check_nothing(overrides: dict[str, Any], m: MethodSpec, label: str, base_cfg: TrainConfig) -> None:
    return None


def _check_scorer(overrides: dict[str, Any], m: MethodSpec, label: str, base_cfg: TrainConfig) -> None:
    if overrides.setdefault("method", m.name) == "model":
        raise ConfigError(f"{label}.overrides: key 'method' of a scorer cannot be 'model' (use kind: model)")


def _check_model(overrides: dict[str, Any], m: MethodSpec, label: str, base_cfg: TrainConfig) -> None:
    if "model" not in overrides and "model" not in m.sweep:
        raise ConfigError(f"{label}.overrides: key 'model' is required for kind model (the folder to evaluate)")
    if overrides.setdefault("method", "model") != "model":
        raise ConfigError(f"{label}.overrides: key 'method' must be 'model' for kind model (use kind: scorer)")


def _check_zeroshot(overrides: dict[str, Any], m: MethodSpec, label: str, base_cfg: TrainConfig) -> None:
    overrides.setdefault("model", base_cfg.model)
    if overrides.setdefault("method", "zeroshot") not in ("zeroshot", "two_step"):
        raise ConfigError(f"{label}.overrides: key 'method' must be 'zeroshot' or 'two_step' for kind zeroshot")
    overrides.setdefault("prompt_style", "zeroshot")  # two_step too: an untrained model needs the worked example


def _check_decoupled(overrides: dict[str, Any], m: MethodSpec, label: str, base_cfg: TrainConfig) -> None:
    # its two halves are the two targets
    _forbid(m.overrides, ("target",), f"{label}.overrides", "is set by kind decoupled_sft (slate, then rank)")
    _forbid(m.sweep, ("target",), f"{label}.sweep", "is set by kind decoupled_sft (slate, then rank)")


def _train_nothing(base_values: dict[str, Any], values: dict[str, Any], at: RunPlace) -> Trained:
    return None, None


def _train_rl(base_values: dict[str, Any], values: dict[str, Any], at: RunPlace) -> Trained:
    merged = {**base_values, **values, "seed": at.seed, "output_dir": str(at.run_dir / "train")}
    if at.warm_dir is not None:
        merged["model"] = str(at.warm_dir)
    return build_config(TrainConfig, merged, at.where), None


def _sft_values(base_values: dict[str, Any], values: dict[str, Any], at: RunPlace) -> dict[str, Any]:
    shared = {k: v for k, v in base_values.items() if k in SFT_FROM_BASE}
    merged = {**shared, **values, "seed": at.seed, "output_dir": str(at.run_dir / "train")}
    if at.warm_dir is not None:
        merged["model"] = str(at.warm_dir)
    return merged


def _train_sft(base_values: dict[str, Any], values: dict[str, Any], at: RunPlace) -> Trained:
    return build_config(SFTConfig, _sft_values(base_values, values, at), at.where), None


def _train_decoupled(base_values: dict[str, Any], values: dict[str, Any], at: RunPlace) -> Trained:
    merged = _sft_values(base_values, values, at)
    merged["target"] = "slate"  # equal budget: each half gets the same SFT keys
    ranker_cfg = build_config(SFTConfig, {**merged, "target": "rank", "output_dir": str(at.run_dir / "train_ranker")}, at.where)
    return build_config(SFTConfig, merged, at.where), ranker_cfg


def _eval_own_values(values: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    return values  # the method's keys are EvalConfig keys


def _eval_trained_model(values: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    return {"method": "model", "model": str(run_dir / "train" / "model")}


def _eval_two_step(values: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    return {"method": "two_step", "model": str(run_dir / "train" / "model"),
            "selector": str(run_dir / "train" / "model"), "ranker": str(run_dir / "train_ranker" / "model")}  # fmt: skip


@dataclass(frozen=True)
class KindRule:
    """What one method kind runs: the config its overrides are checked against, the checks
    and defaults its overrides get, how its training configs are built and what is scored."""

    config_cls: type  # the command config of `overrides`
    command: str | None  # the training command ("train", "sft"; None: evaluation only)
    producer: bool  # writes a slate and a ranking (an LLM) rather than scoring the pool
    check: Callable[[dict[str, Any], MethodSpec, str, TrainConfig], None]  # may fill defaults in
    train: Callable[[dict[str, Any], dict[str, Any], RunPlace], Trained]
    eval_values: Callable[[dict[str, Any], Path], dict[str, Any]]  # over base, train and eval keys
    seeded: Callable[[dict[str, Any]], bool]  # runs once per seed by default (given the checked overrides)


def _always(overrides: dict[str, Any]) -> bool:
    return True


def _never(overrides: dict[str, Any]) -> bool:
    return False


def _seeded_scorer(overrides: dict[str, Any]) -> bool:
    return overrides.get("method") in SEEDED_SCORERS


KINDS: dict[str, KindRule] = {
    "train": KindRule(TrainConfig, "train", True, _check_nothing, _train_rl, _eval_trained_model, _always),
    "sft": KindRule(SFTConfig, "sft", True, _check_nothing, _train_sft, _eval_trained_model, _always),
    "decoupled_sft": KindRule(SFTConfig, "sft", True, _check_decoupled, _train_decoupled, _eval_two_step, _always),
    "scorer": KindRule(EvalConfig, None, False, _check_scorer, _train_nothing, _eval_own_values, _seeded_scorer),
    "model": KindRule(EvalConfig, None, True, _check_model, _train_nothing, _eval_own_values, _never),
    "zeroshot": KindRule(EvalConfig, None, True, _check_zeroshot, _train_nothing, _eval_own_values, _never),
}

# ------------------------------------------------------------------ helpers


def _fmt_value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (bool, type(None))) else str(v)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", name).strip("_") or "method"


def _forbid(values: dict[str, Any], keys: Sequence[str], where: str, why: str) -> None:
    for key in keys:
        if key in values:
            raise ConfigError(f"{where}: key '{key}' {why}")


def with_seed(values: dict[str, Any], seed: int) -> dict[str, Any]:
    """``values`` with ``{seed}`` in each string value replaced by ``seed``: a per-seed input
    (a backbone or warm start built outside the compare for each seed). Only that one
    placeholder, in strings and lists of strings: other braces are left as they are."""

    def sub(v: Any) -> Any:
        if isinstance(v, str):
            return v.replace("{seed}", str(seed))
        return [sub(x) for x in v] if isinstance(v, list) else v

    return {k: sub(v) for k, v in values.items()}


def _sweep_combos(sweep: dict[str, Any], where: str) -> list[dict[str, Any]]:
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.sweep: key '{key}' needs a non-empty list of values, got {values!r}")
    keys = list(sweep)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(sweep[k] for k in keys))] or [{}]


def _default_seeds(rule: KindRule, overrides: dict[str, Any], seeds: list[int]) -> list[int]:
    if rule.seeded(overrides):
        return list(seeds)
    return seeds[:1]  # deterministic: another seed would only repeat the same numbers


def _eval_config(
    base_cfg: TrainConfig, train_cfg: TrainConfig | SFTConfig | None, layers: Sequence[dict[str, Any]], at: RunPlace
) -> tuple[EvalConfig, EvalConfig | None]:
    """The run's EvalConfig (base's decoding keys, then the run's training ones, then each of
    ``layers``), and, on the toy task, the config that writes its shared test split."""
    ev = {k: getattr(base_cfg, k) for k in EVAL_FROM_BASE}
    if train_cfg is not None:  # decode like this run was trained to (its own max_new_tokens, limits)
        ev.update({k: getattr(train_cfg, k) for k in EVAL_FROM_BASE if hasattr(train_cfg, k)})
    for layer in layers:
        ev.update(layer)
    ev.update({"seed": at.seed, "output_dir": str(at.run_dir / "eval")})
    eval_cfg = build_config(EvalConfig, ev, f"{at.where} (evaluation)")
    if eval_cfg.dataset != "toy":
        return eval_cfg, None
    # one shared test set: see the module docstring
    toy_source = dataclasses.replace(eval_cfg, seed=TOY_EVAL_SEED, method="random", output_dir="")
    folder = at.data_dir / (
        f"toy_{eval_cfg.split}_n{eval_cfg.limit or 'all'}_p{eval_cfg.toy_pool_size}_r{eval_cfg.toy_max_relevant}"
    )
    return dataclasses.replace(eval_cfg, dataset=str(folder)), toy_source


# ------------------------------------------------------------------ expansion


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
    extras = extra_eval_specs(cfg)

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
        rule = KINDS[m.kind]
        _forbid(m.overrides, SET_BY_COMPARE, f"{label}.overrides", "is set by compare per run")
        _forbid(m.sweep, SET_BY_COMPARE, f"{label}.sweep", "is set by compare per run")
        _forbid(m.eval, (*SET_BY_COMPARE, "model", "method"), f"{label}.eval", "is set by compare per run")
        overrides = check_values(rule.config_cls, m.overrides, f"{label}.overrides")
        check_values(rule.config_cls, {k: (v[0] if isinstance(v, list) and v else v) for k, v in m.sweep.items()}, f"{label}.sweep")
        eval_method = check_values(EvalConfig, m.eval, f"{label}.eval")
        rule.check(overrides, m, label, base_cfg)
        seeds = list(m.seeds) if m.seeds is not None else _default_seeds(rule, overrides, cfg.seeds)
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
                at = RunPlace(
                    seed=seed, run_dir=run_dir, data_dir=out_dir / "data",
                    warm_dir=out_dir / "runs" / _slug(m.warm_start) / f"seed{seed}" / "train" / "model" if warm else None,
                    where=f"{label}" + (f" sweep {combo}" if combo else ""),
                )  # fmt: skip
                values = with_seed({**overrides, **combo}, seed)
                train_cfg, ranker_cfg = rule.train(base_values, values, at)
                eval_cfg, toy_source = _eval_config(base_cfg, train_cfg, [eval_top, eval_method, rule.eval_values(values, run_dir)], at)
                runs.append(RunSpec(
                    method=display, kind=m.kind, seed=seed, run_dir=run_dir, producer=rule.producer,
                    command=rule.command, train_cfg=train_cfg,
                    eval_cfg=eval_cfg, warm_start=at.warm_dir, toy_source=toy_source,
                    warm_from=trained_runs[(m.warm_start, seed)] if m.warm_start else None, ranker_cfg=ranker_cfg,
                ))  # fmt: skip
                runs[-1].extra_evals = {x.name: extra_eval_config(eval_cfg, x, runs[-1].extra_dir(x.name), at.where) for x in extras}
                trained_runs[(display, seed)] = runs[-1]
            per_method.append(runs)
    order = list(dict.fromkeys([*cfg.seeds, *(r.seed for runs in per_method for r in runs)]))
    return [r for seed in order for runs in per_method for r in runs if r.seed == seed]
