"""An experiment file and its runs: :class:`CompareConfig` (the YAML), :class:`MethodSpec`
(one entry of ``methods:``), :class:`RunSpec` (one (method, seed) run with its resolved
command configs) and :func:`load_compare_config`. How a config becomes runs:
:mod:`fgrpo.experiments.expand`.

Equal budgets by construction: ``base`` holds the ``fgrpo train`` keys every trained method
shares (steps, G, prompts per step, learning rate, warm start...); a method lists only what
makes it that method (``advantage_estimator: grpo``). The budget each method actually got
(steps x prompts x G = rollouts) is printed in ``results.md``, so a method that overrides it
is visible rather than silently unequal.

More test sets: ``extra_evals`` lists other prepared folders of the same items (name,
dataset, split, limit: :class:`~fgrpo.config.commands.ExtraEvalSpec`). Every run is scored on
each of them too, with its own evaluation config in :attr:`RunSpec.extra_evals` (the main one
with dataset, split and limit replaced; fitted scorers fitted on the main folder:
:mod:`fgrpo.experiments.extra`) and its own marker and fingerprint (:meth:`RunSpec.extra_digest`),
so the run's own fingerprint is the same with or without them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fgrpo.config import (
    ConfigError,
    build_config,
    check_values,
    parse_overrides,
    read_yaml_mapping,
)
from fgrpo.config.commands import (
    CompareConfig,
    EvalConfig,
    SFTConfig,
    TrainConfig,
)
from fgrpo.experiments.digest import config_digest, config_digests


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
    extra_evals: dict[str, EvalConfig] = field(default_factory=dict)  # extra dataset name -> its evaluation of this run

    def train_stages(self) -> list[tuple[str, TrainConfig | SFTConfig, str]]:
        """(command, config, log/config file stem) of each training subprocess, in order."""
        if self.command is None or self.train_cfg is None:
            return []
        stages: list[tuple[str, TrainConfig | SFTConfig, str]] = [(self.command, self.train_cfg, self.command)]
        if self.ranker_cfg is not None:
            stages.append(("sft", self.ranker_cfg, "sft_ranker"))
        return stages

    @property
    def marker(self) -> Path:
        return self.run_dir / "metrics.json"

    def digest(self, part: Literal["train", "run"] = "run") -> str:
        """Fingerprint of what the run computes ("train": its training configs only). A finished
        run whose experiment entry was edited since (say base.max_steps) is redone, not reused;
        bookkeeping keys are left out, so changing them reuses the results (:mod:`.digest`)."""
        configs = [self.train_cfg, self.ranker_cfg] if part == "train" else [self.train_cfg, self.ranker_cfg, self.eval_cfg]
        warm = self.warm_from.digest("train") if self.warm_from is not None else None
        return config_digest(configs, warm)

    def digests(self, part: Literal["train", "run"] = "run") -> set[str]:
        """The digests a finished run of the current configs may have recorded (:meth:`digest`,
        and its forms from before a key was declared hashed_if_set: :func:`.digest.config_digests`)."""
        configs = [self.train_cfg, self.ranker_cfg] if part == "train" else [self.train_cfg, self.ranker_cfg, self.eval_cfg]
        warm = self.warm_from.digests("train") if self.warm_from is not None else None
        return config_digests(configs, warm)

    @property
    def done(self) -> bool:
        """Finished with the current config (a marker from before digests were recorded counts)."""
        if not self.marker.is_file():
            return False
        recorded = json.loads(self.marker.read_text()).get("config_digest")
        return recorded is None or recorded in self.digests()

    def extra_dir(self, name: str) -> Path:
        """Where the evaluation on extra dataset ``name`` writes (eval/, eval.yaml, eval.log, metrics.json)."""
        return self.run_dir / "extra" / name

    def extra_digest(self, name: str) -> str:
        """Fingerprint of the evaluation on extra dataset ``name``: the run's training configs and
        that evaluation's, so a retrained model makes it stale; the run's own digest is untouched."""
        warm = self.warm_from.digest("train") if self.warm_from is not None else None
        return config_digest([self.train_cfg, self.ranker_cfg, self.extra_evals[name]], warm)

    def extra_done(self, name: str) -> bool:
        """The evaluation on extra dataset ``name`` finished with the current configs."""
        marker = self.extra_dir(name) / "metrics.json"
        return marker.is_file() and json.loads(marker.read_text()).get("config_digest") == self.extra_digest(name)

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
    cfg = build_config(CompareConfig, values, where)
    from fgrpo.experiments.expand import expand_runs  # expand builds on this module's classes

    try:  # every run's command config is built now, so a typo fails before hours of training
        expand_runs(cfg)
    except ValueError as e:  # ConfigError too: prefixed with the file, as build_config does
        raise ConfigError(f"{where}: {e}") from e
    return cfg


