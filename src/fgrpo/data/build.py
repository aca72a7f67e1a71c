"""The library half of ``fgrpo prepare``: the dataset a :class:`PrepareConfig` names, read
and built into train/valid/test examples (:func:`build_dataset`), and the manifest that
describes them (:func:`make_manifest`). The command (:mod:`fgrpo.commands.prepare`) writes
both.

:func:`build_dataset` dispatches to the matching reader and builder
(:mod:`fgrpo.data.movielens` or :mod:`fgrpo.data.lastfm` + :mod:`fgrpo.data.next_item`
for sequential recommendation, :mod:`fgrpo.data.qa` + :mod:`fgrpo.data.passages` for multi-hop QA); a missing MovieLens-100K is fetched first (:mod:`fgrpo.data.fetch`). The
manifest records what is needed to trust and reproduce the files: the sha256 of every input
file, the full config, counts, pool sizes and every skipped or altered record. Nothing in it
depends on time or machine (input files are named relative to the input folder), so the
same inputs and seed give byte-identical outputs.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgrpo.config import to_dict
from fgrpo.config.commands import PrepareConfig
from fgrpo.data import fetch, hf, lastfm, movielens, next_item, passages, qa, recbole
from fgrpo.data.common import SPLITS, input_hashes
from fgrpo.data.schema import DataError, Example

SEQUENTIAL = ("ml100k", "ml1m", "llara", "lastfm", "recbole")
QA_LOADERS = {
    "hotpotqa_distractor": qa.load_hotpotqa_distractor,
    "hotpotqa_ircot": qa.load_hotpotqa_ircot,
    "musique": qa.load_musique,
}
LLARA_TASKS = {"movie": "movies", "lastfm": "music", "steam": "games"}  # folder name -> task


@dataclass
class BuiltDataset:
    """The examples of each split, the sha256 of every input file read, the task name."""

    splits: dict[str, list[Example]]
    inputs: dict[str, str]
    task: str

def summary(values: list[int]) -> dict[str, float | int | None]:
    """min / median / p95 (nearest rank) / max of ``values``; None entries when empty."""
    if not values:
        return {"min": None, "median": None, "p95": None, "max": None}
    s = sorted(values)
    return {
        "min": s[0],
        "median": statistics.median(s),
        "p95": s[max(0, math.ceil(0.95 * len(s)) - 1)],
        "max": s[-1],
    }


def _llara_task(folder: Path) -> str:
    low = folder.resolve().name.lower()
    for key, task in LLARA_TASKS.items():
        if key in low:
            return task
    raise DataError(
        f"{folder}: cannot tell the llara task from the folder name; set task "
        "(movies, music or games)"
    )


def _build_lastfm(
    cfg: PrepareConfig, root: Path, knobs: dict[str, Any], stats: dict[str, int]
) -> BuiltDataset:
    """LastFM under ``cfg.protocol``: LLaRA's split with our pools, or S-DPO's pools for
    valid/test (train as under llara, over S-DPO's names)."""
    task = cfg.task or "music"
    if cfg.protocol == "llara":
        rows, titles, files = lastfm.load_llara(root, stats)
        splits = next_item.build_llara(rows, titles, task=task, **knobs)
        return BuiltDataset(splits, input_hashes(root, files), task)
    train, pools, titles, files = lastfm.load_sdpo(root, cfg.pool_size, stats)
    splits = next_item.build_llara({"train": train}, titles, task=task, **knobs)
    for split, rows in pools.items():
        splits[split] = next_item.build_fixed_pools(
            rows,
            titles,
            task=task,
            split=split,
            seed=cfg.seed,
            history_len=cfg.history_len,
            max_examples=cfg.max_examples,
        )
    return BuiltDataset(splits, input_hashes(root, files), task)


def _build_sequential(
    cfg: PrepareConfig, stats: dict[str, int]
) -> BuiltDataset:
    if cfg.dataset == "ml100k" and cfg.input_path is None:
        root = fetch.fetch_ml100k()
    else:
        root = Path(cfg.input_path)  # type: ignore[arg-type]  # validate() guarantees it
        if not root.is_dir():
            raise DataError(f"{root}: folder not found (dataset {cfg.dataset} reads a folder)")
    knobs = _knobs(cfg, stats)
    if cfg.dataset == "lastfm":
        return _build_lastfm(cfg, root, knobs, stats)
    if cfg.dataset == "llara":
        rows, titles, files = movielens.load_llara(
            root, cfg.llara_padding_id, cfg.skip_invalid, stats
        )
        task = cfg.task or _llara_task(root)
        splits = next_item.build_llara(rows, titles, task=task, **knobs)  # type: ignore[arg-type]
        return BuiltDataset(splits, input_hashes(root, files), task)
    if cfg.dataset == "recbole":
        data = recbole.load_recbole(
            root, _fields(cfg), cfg.interactions_file, cfg.items_file, cfg.skip_invalid, stats
        )
        task = cfg.task or "generic"
    else:
        load = movielens.load_ml100k if cfg.dataset == "ml100k" else movielens.load_ml1m
        data = load(root, cfg.skip_invalid, stats, cfg.interactions_file, cfg.items_file)
        task = cfg.task or "movies"
    return _next_items(cfg, data, task, stats, root)


def _knobs(cfg: PrepareConfig, stats: dict[str, int]) -> dict[str, Any]:
    """The keyword arguments every next-item builder takes."""
    return dict(
        seed=cfg.seed,
        pool_size=cfg.pool_size,
        history_len=cfg.history_len,
        max_examples=cfg.max_examples,
        skip_invalid=cfg.skip_invalid,
        stats=stats,
    )


def _fields(cfg: PrepareConfig) -> recbole.Fields:
    return recbole.Fields(
        cfg.user_field, cfg.item_field, cfg.time_field, cfg.item_list_field, cfg.item_text_field
    )


def _next_items(
    cfg: PrepareConfig, data: movielens.RecData, task: str, stats: dict[str, int], root: Path
) -> BuiltDataset:
    knobs = _knobs(cfg, stats)
    splits = next_item.build_sequential(
        data,
        task=task,
        max_train_per_user=cfg.max_train_per_user,
        num_targets=cfg.num_targets,
        target_grades=cfg.target_grades,
        **knobs,  # type: ignore[arg-type]
    )
    return BuiltDataset(splits, input_hashes(root, data.files), task)


def _build_qa(
    cfg: PrepareConfig, stats: dict[str, int]
) -> BuiltDataset:
    path = Path(cfg.input_path)  # type: ignore[arg-type]  # validate() guarantees it
    if cfg.dataset == "gold_retrieved":
        files = list(qa.find_gold_retrieved_files(path))
        questions = qa.load_gold_retrieved(path, cfg.dedup_overlap, cfg.skip_invalid, stats)
    else:
        files = [path]
        questions = QA_LOADERS[cfg.dataset](path, cfg.skip_invalid, stats)
    task = cfg.task or passages.TASK
    splits = passages.build_qa(
        questions,
        source=cfg.dataset,
        seed=cfg.seed,
        pool_size=cfg.pool_size,
        max_passage_words=cfg.max_passage_words,
        valid_fraction=cfg.valid_fraction,
        test_fraction=cfg.test_fraction,
        max_examples=cfg.max_examples,
        skip_invalid=cfg.skip_invalid,
        stats=stats,
    )
    if task != passages.TASK:
        for examples in splits.values():
            for ex in examples:
                ex.task = task
    return BuiltDataset(splits, input_hashes(path.parent if path.is_file() else path, files), task)


def _build_hf(cfg: PrepareConfig, stats: dict[str, int], data: Any) -> BuiltDataset:
    if data is None:
        if cfg.input_path is None:
            raise DataError("dataset hf_dataset: set input_path (a save_to_disk folder) or pass the Dataset in Python")
        root = Path(cfg.input_path)
        data, files, where = hf.load_saved(root), hf.saved_files(root), str(root)
    else:
        root, files, where = Path("."), [], "<datasets.Dataset>"
    if cfg.query_field in hf.columns(data):
        splits = hf.examples_from_hf(
            data, where=where, id_field=cfg.id_field, query_field=cfg.query_field,
            candidates_field=cfg.candidates_field, relevance_field=cfg.relevance_field, task=cfg.task,
            seed=cfg.seed, valid_fraction=cfg.valid_fraction, test_fraction=cfg.test_fraction,
            skip_invalid=cfg.skip_invalid, stats=stats,
        )  # fmt: skip
        tasks = {ex.task for exs in splits.values() for ex in exs}
        return BuiltDataset(splits, input_hashes(root, files), cfg.task or ",".join(sorted(tasks)) or "generic")
    recs = hf.recdata_from_hf(data, where=where, fields=_fields(cfg), skip_invalid=cfg.skip_invalid, stats=stats)
    built = _next_items(cfg, recs, cfg.task or "generic", stats, root)
    built.inputs = input_hashes(root, files)
    return built


def build_dataset(cfg: PrepareConfig, stats: dict[str, int], hf_data: Any = None) -> BuiltDataset:
    """Read the raw files ``cfg`` names and build its splits; ``stats`` gets every skipped
    or altered record by kind. ``cfg`` must be valid (:meth:`PrepareConfig.validate`).
    ``hf_data``: for dataset hf_dataset, a ``datasets.Dataset``/``DatasetDict`` given in
    Python instead of a saved folder."""
    if cfg.dataset == "hf_dataset":
        return _build_hf(cfg, stats, hf_data)
    if cfg.dataset in SEQUENTIAL:
        return _build_sequential(cfg, stats)
    return _build_qa(cfg, stats)


def make_manifest(
    cfg: PrepareConfig,
    built: BuiltDataset,
    stats: dict[str, int],
    prompt_length_fn: Callable[[Example], int] | None = None,
) -> dict[str, Any]:
    """The manifest of a built dataset (see module doc). ``prompt_length_fn`` (e.g. the token
    count of the rendered prompt), when given, adds ``prompt_lengths``: min / median / p95 /
    max per split."""
    splits = built.splits
    manifest: dict[str, Any] = {
        "dataset": cfg.dataset,
        "task": built.task,
        "seed": cfg.seed,
        "source": (
            f"pip wheel {fetch.RECBOLE_REQUIREMENT}"
            if cfg.dataset == "ml100k" and cfg.input_path is None
            else cfg.input_path
        ),
        "inputs_sha256": built.inputs,
        "counts": {s: len(splits[s]) for s in SPLITS},
        "pool_size": {s: summary([ex.num_candidates for ex in splits[s]]) for s in SPLITS},
        "relevant_per_example": {
            s: summary([len(ex.relevant_numbers()) for ex in splits[s]]) for s in SPLITS
        },
        "skipped": {k: v for k, v in sorted(stats.items()) if k.startswith("skipped_")},
        "stats": {k: v for k, v in sorted(stats.items()) if not k.startswith("skipped_")},
        "config": to_dict(cfg),
    }
    if prompt_length_fn is not None:
        manifest["prompt_lengths"] = {
            s: summary([int(prompt_length_fn(ex)) for ex in splits[s]]) for s in SPLITS
        }
    return manifest
