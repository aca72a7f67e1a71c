"""The splits a command reads, checked before any work: rows (schema.read_split), then
prompt lengths against the model's context (:func:`fit_to_context`).

What was skipped (``skip_invalid_rows=true``, ``prompt_overflow=skip``) is printed on the
console (stderr) and written to ``output_dir/data_report.json`` (:func:`write_data_report`),
so a run never trains or scores on silently fewer examples.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgrpo.data.schema import DataError, Example, read_jsonl, read_split, skipped_rows_lines

DATA_REPORT = "data_report.json"


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


TOY_SEED_OFFSETS = {"train": 0, "valid": 10_000, "test": 20_000}  # each toy split its own seed


@dataclass(frozen=True)
class ToyTask:
    """The built-in synthetic task's shape: candidates per pool, most relevant, base seed."""

    pool_size: int
    max_relevant: int
    seed: int


def toy_split(name: str, size: int, toy: ToyTask) -> list[Example]:
    """``size`` toy examples of split ``name`` (its seed: ``toy.seed`` + the split's offset)."""
    from fgrpo.data.toy import make_toy_examples

    return make_toy_examples(size, toy.pool_size, toy.max_relevant, seed=toy.seed + TOY_SEED_OFFSETS[name])


TOY_EVAL_SIZE = 200  # toy task: examples of the scored split (limit: fewer) and of valid (early stopping)
TOY_TRAIN_SIZE = 2000  # toy task: training examples of the methods fitted on train


def eval_splits(
    dataset: str, split: str, *, limit: int | None, fitted: bool, skip_invalid: bool, toy: ToyTask,
    report: dict[str, Any] | None = None,
) -> tuple[list[Example], list[Example]]:
    """What an evaluation reads: (the first ``limit`` examples of ``split``, the train split
    when the method is ``fitted`` on it, else []). The toy task generates ``limit`` (else
    TOY_EVAL_SIZE) scored examples and always TOY_TRAIN_SIZE training ones."""
    if dataset == "toy":
        examples = read_splits("toy", (split,), skip_invalid=skip_invalid, toy=toy, toy_sizes={split: limit or TOY_EVAL_SIZE})[split]
        train = read_splits("toy", ("train",), skip_invalid=skip_invalid, toy=toy, toy_sizes={"train": TOY_TRAIN_SIZE})["train"]
        return examples, train
    names = (split, "train") if fitted and split != "train" else (split,)
    splits = read_splits(dataset, names, skip_invalid=skip_invalid, report=report)
    examples = splits[split][:limit] if limit is not None else splits[split]
    return examples, splits["train"] if fitted else []


def read_splits(
    dataset: str,
    names: Sequence[str],
    *,
    skip_invalid: bool,
    toy: ToyTask | None = None,
    toy_sizes: Mapping[str, int] | None = None,
    optional: Sequence[str] = (),
    report: dict[str, Any] | None = None,
    announce: bool = True,
) -> dict[str, list[Example]]:
    """The one reader of a dataset: split name -> examples, in the order of ``names``.

    ``dataset``: ``'toy'`` with a ``toy`` task (``toy_sizes[name]`` examples of each split,
    generated) or a folder made by ``fgrpo prepare`` holding ``<name>.jsonl``. A split in ``optional`` may be
    missing (then empty) or empty; any other must hold at least one example (DataError,
    naming the file). ``skip_invalid``: skip and count malformed rows instead of stopping at
    the first. ``report['files']`` gets the rows read and skipped per file; ``announce``
    prints one console line per file with rows skipped."""
    if dataset == "toy" and toy is not None and toy_sizes is not None:
        return {name: toy_split(name, toy_sizes[name], toy) for name in names}
    folder = Path(dataset)
    if not folder.is_dir():
        raise DataError(f"{folder}: dataset folder not found (key 'dataset'; make it with fgrpo prepare)")
    files: dict[str, Any] = {}
    out: dict[str, list[Example]] = {}
    for name in names:
        path = folder / f"{name}.jsonl"
        if name not in optional:
            out[name] = read_split(path, skip_invalid, files)
        elif path.is_file():
            stats: dict[str, int] = {}
            out[name] = read_jsonl(path, skip_invalid, stats)
            files[str(path)] = stats
        else:
            out[name] = []
    if announce:
        for line in skipped_rows_lines(files):
            say(line)
    if report is not None:
        report.setdefault("files", {}).update(files)
    return out


def load_splits(
    dataset: str, *, skip_invalid: bool, toy: ToyTask, toy_num_train: int, toy_num_valid: int,
    report: dict[str, Any] | None = None,
) -> tuple[list[Example], list[Example]]:  # fmt: skip
    """(train, valid) of a training command: train required, valid optional (an empty or
    missing valid split only means no in-training evaluation)."""
    splits = read_splits(
        dataset, ("train", "valid"), skip_invalid=skip_invalid, toy=toy,
        toy_sizes={"train": toy_num_train, "valid": toy_num_valid}, optional=("valid",), report=report,
    )  # fmt: skip
    return splits["train"], splits["valid"]


def model_context(model: Any) -> int | None:
    """The model's context length (``max_position_embeddings`` of its text config), if known."""
    config = getattr(model, "config", model)
    if hasattr(config, "get_text_config"):
        config = config.get_text_config(decoder=True)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def fit_to_context(
    examples: list[Example],
    encode: Any,
    context: int | None,
    new_tokens: int,
    policy: str,
    split: str,
    report: dict[str, Any] | None = None,
) -> list[Example]:
    """The examples whose prompt (``encode(example)``, token ids) plus ``new_tokens`` fits
    ``context``. One that does not: ``policy='error'`` raises :class:`DataError` naming its
    file and line (or id) and both lengths; ``'skip'`` drops it and counts it in
    ``report['prompt_overflow']`` (and on the console). Prompts are never truncated."""
    if context is None or not examples:
        return examples
    limit = context - new_tokens
    kept, dropped, longest = [], 0, 0
    for ex in examples:
        n = len(encode(ex))
        longest = max(longest, n)
        if n <= limit:
            kept.append(ex)
            continue
        if policy != "skip":
            where = ex.source or f"{split} example"
            raise DataError(
                f"{where}: example {ex.id!r:.80}: prompt is {n} tokens; with max_new_tokens={new_tokens} it does "
                f"not fit the model's context of {context} tokens (key 'prompt_overflow': skip drops such "
                f"examples and counts them; or shorten the pool: prepare's pool_size, max_passage_words)"
            )
        dropped += 1
    if report is not None:
        entry = report.setdefault("prompt_overflow", {"policy": policy, "context": context, "new_tokens": new_tokens})
        entry[split] = {"skipped": dropped, "kept": len(kept), "longest_prompt": longest}
    if dropped:
        say(f"data: skipped {dropped} of {len(examples)} {split} example(s) whose prompt + {new_tokens} new tokens "
            f"exceeds the context of {context} tokens (prompt_overflow=skip)")
    if not kept:
        raise DataError(f"{split} split: no example fits the context of {context} tokens (longest prompt {longest})")
    return kept


def fit_splits(
    splits: dict[str, list[Example]], encode: Callable[[Example], list[int]], context: int | None,
    new_tokens: int, policy: str, report: dict[str, Any],
) -> dict[str, list[Example]]:  # fmt: skip
    """:func:`fit_to_context` on each split (``policy``: the ``prompt_overflow`` key)."""
    return {name: fit_to_context(examples, encode, context, new_tokens, policy, name, report) for name, examples in splits.items()}


def write_data_report(output_dir: str | Path | None, report: dict[str, Any]) -> None:
    """``output_dir/data_report.json``: rows read and skipped per file, prompts over the context."""
    if output_dir is None:
        return
    path = Path(output_dir) / DATA_REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
