"""The splits a command reads, checked before any work: rows (schema.read_split), then
prompt lengths against the model's context (:func:`fit_to_context`).

What was skipped (``skip_invalid_rows=true``, ``prompt_overflow=skip``) is printed on the
console (stderr) and written to ``output_dir/data_report.json`` (:func:`write_data_report`),
so a run never trains or scores on silently fewer examples.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fgrpo.data.schema import DataError, Example, read_jsonl, read_split, skipped_rows_lines

DATA_REPORT = "data_report.json"


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def load_splits(cfg: Any, report: dict[str, Any] | None = None) -> tuple[list[Example], list[Example]]:
    """(train, valid) examples of a training command's data options. ``report`` gets the
    rows read and skipped per file (``report['files']``)."""
    from fgrpo.data.toy import make_toy_examples

    if cfg.dataset == "toy":
        train = make_toy_examples(cfg.toy_num_train, cfg.toy_pool_size, cfg.toy_max_relevant, seed=cfg.seed)
        valid = make_toy_examples(cfg.toy_num_valid, cfg.toy_pool_size, cfg.toy_max_relevant, seed=cfg.seed + 10_000)
        return train, valid
    folder = Path(cfg.dataset)
    if not folder.is_dir():
        raise DataError(f"{folder}: dataset folder not found (key 'dataset'; make it with fgrpo prepare)")
    files: dict[str, Any] = {}
    train = read_split(folder / "train.jsonl", cfg.skip_invalid_rows, files)
    valid_path = folder / "valid.jsonl"
    valid: list[Example] = []
    if valid_path.is_file():  # optional: an empty valid split only means no in-training evaluation
        stats: dict[str, int] = {}
        valid = read_jsonl(valid_path, cfg.skip_invalid_rows, stats)
        files[str(valid_path)] = stats
    for line in skipped_rows_lines(files):
        say(line)
    if report is not None:
        report.setdefault("files", {}).update(files)
    return train, valid


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
    cfg: Any, tokenizer: Any, model: Any, splits: dict[str, list[Example]], new_tokens: int, report: dict[str, Any]
) -> dict[str, list[Example]]:
    """:func:`fit_to_context` on each split with the config's ``prompt_overflow`` and
    ``prompt_context`` (null: the model's)."""
    from fgrpo.format.prompts import encode_prompt

    context = cfg.prompt_context or model_context(model)

    def encode(ex: Example) -> list[int]:
        return encode_prompt(tokenizer, ex, cfg.max_slate, cfg.max_rank)

    return {
        name: fit_to_context(examples, encode, context, new_tokens, cfg.prompt_overflow, name, report)
        for name, examples in splits.items()
    }


def write_data_report(output_dir: str | Path | None, report: dict[str, Any]) -> None:
    """``output_dir/data_report.json``: rows read and skipped per file, prompts over the context."""
    if output_dir is None:
        return
    path = Path(output_dir) / DATA_REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
