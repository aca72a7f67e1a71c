"""Extra evaluation datasets of a comparison (``extra_evals:``): every run, after its main
evaluation, is scored again on each of them with the same model and the same eval keys.

* **The same model.** A trained method's model folder is evaluated as it is. A fitted scorer
  (popularity, sasrec, gru4rec) trains inside ``fgrpo eval`` on the main evaluation's folder
  (``train_dataset``: its train split, and its valid split for early stopping), with the
  same seed and keys, and scores only the extra pools: sasrec and gru4rec load the main
  evaluation's saved fit (``scorer_from``, :func:`with_saved_fit`), popularity counts again.
  Nothing of the extra dataset's own train split is read.
* **The same items.** Item ids must mean the same items in both datasets: an id-tiny model
  has one token per item of the folder it was built from, SASRec one embedding per item it
  trained on. :func:`check_extra_items` reads each extra split once and stops the compare,
  before any extra evaluation, on an item the main dataset does not have, rather than
  scoring it as an unknown item.
* **Own stages.** Each extra evaluation has its own marker and fingerprint
  (:meth:`RunSpec.extra_digest`), so adding ``extra_evals`` to a finished compare runs only
  them, and a run's own digest does not depend on them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from fgrpo.config import ConfigError, build_config
from fgrpo.config.commands import TRAINED_METHODS, CompareConfig, EvalConfig, ExtraEvalSpec
from fgrpo.experiments.spec import RunSpec

_NAME = re.compile(r"[A-Za-z0-9._-]+")


def extra_eval_specs(cfg: CompareConfig) -> list[ExtraEvalSpec]:
    """The checked entries of ``extra_evals:`` (names unique and usable as folder names)."""
    out: list[ExtraEvalSpec] = []
    for i, entry in enumerate(cfg.extra_evals):
        label = f"extra_evals[{i}]"
        x = build_config(ExtraEvalSpec, entry, label)
        if not _NAME.fullmatch(x.name):
            raise ConfigError(f"{label}: key 'name' must be letters, digits, '.', '_' or '-' (a folder name), got {x.name!r}")
        if any(x.name == o.name for o in out):
            raise ConfigError(f"{label}: key 'name' repeats an earlier extra dataset ('{x.name}')")
        if not x.dataset or x.dataset == "toy":
            raise ConfigError(f"{label} '{x.name}': key 'dataset' must name a folder made by `fgrpo prepare`")
        if x.limit is not None and x.limit < 1:
            raise ConfigError(f"{label} '{x.name}': key 'limit' must be >= 1 or null")
        out.append(x)
    return out


def extra_eval_config(main: EvalConfig, x: ExtraEvalSpec, out_dir: Path, where: str) -> EvalConfig:
    """The run's evaluation on extra dataset ``x``: ``main`` with the extra dataset, split and
    limit, written under ``out_dir``; a fitted scorer is fitted on ``main``'s folder."""
    values = {**dataclasses.asdict(main), "dataset": x.dataset, "split": x.split, "limit": x.limit, "output_dir": str(out_dir / "eval")}
    if main.method in TRAINED_METHODS:
        values["train_dataset"] = main.train_dataset or main.dataset
    return build_config(EvalConfig, values, f"{where} (extra evaluation '{x.name}')")


def with_saved_fit(extra: EvalConfig, main: EvalConfig) -> EvalConfig:
    """``extra`` loading the sasrec/gru4rec fit of the main evaluation (its ``scorer.pt``)
    instead of fitting the same model again, when the main evaluation saved one (runs from
    before scorers were saved have none: they are fitted again). ``scorer_from`` is
    bookkeeping: the loaded fit is the one a refit would give (same seed, keys, train split;
    :meth:`~fgrpo.baselines.sequential.SequentialScorer.load` checks)."""
    saved = Path(main.output_dir) / "scorer.pt"
    if extra.method in ("sasrec", "gru4rec") and extra.scorer_from is None and saved.is_file():
        return dataclasses.replace(extra, scorer_from=str(saved))
    return extra


def check_extra_items(specs: Sequence[RunSpec]) -> dict[tuple[str, str, str], int]:
    """ConfigError naming the first extra-dataset example with an item id that the main
    evaluation's folder does not have (candidates or history), for every (main folder, extra
    folder, split) of the extra evaluations still to run; returns each pair's item count."""
    from fgrpo.data.schema import DataError
    from fgrpo.data.splits import read_splits
    from fgrpo.models.idtiny import catalogue_ids

    catalogues: dict[str, set[str]] = {}
    checked: dict[tuple[str, str, str], int] = {}
    for spec in specs:
        for name, ev in spec.extra_evals.items():
            if spec.extra_done(name):
                continue
            main_folder = spec.eval_cfg.train_dataset or spec.eval_cfg.dataset
            key = (main_folder, ev.dataset, ev.split)
            if key in checked:
                continue
            try:
                if main_folder not in catalogues:
                    main_splits = read_splits(main_folder, ("train", "valid", "test"), skip_invalid=ev.skip_invalid_rows,
                                              optional=("train", "valid", "test"), announce=False)  # fmt: skip
                    catalogues[main_folder] = set(catalogue_ids(main_splits.values()))
                examples = read_splits(ev.dataset, (ev.split,), skip_invalid=ev.skip_invalid_rows, announce=False)[ev.split]
            except DataError as e:
                raise ConfigError(f"extra_evals '{name}': {e}") from e
            known = catalogues[main_folder]
            for ex in examples[: ev.limit]:
                missing = sorted(set(catalogue_ids([[ex]])) - known)
                if missing:
                    raise ConfigError(
                        f"extra_evals '{name}': {Path(ev.dataset) / f'{ev.split}.jsonl'}: example '{ex.id}' has item id(s) "
                        f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} that {main_folder} does not have: the "
                        "models of this compare have no token or embedding for them (an extra dataset must use the main "
                        "dataset's item ids)"
                    )
            checked[key] = len(catalogue_ids([examples[: ev.limit]]))
    return checked
