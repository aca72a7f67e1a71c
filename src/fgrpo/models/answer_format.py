"""How a model folder was trained to answer, in ``fgrpo.json`` next to its weights: the
parser limits, the prompt style, what its answers name items by, the completion length.

Written by every command that saves a model (sft, train and its checkpoints,
pretrain-items); read by every command that loads one, so that a model is parsed with the
limits it was trained with. A value a command is given that contradicts the folder's is a
ConfigError naming the key and the file. A folder without the file (a plain Hugging Face
model) is loaded as before: with the command's own values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FORMAT_FILE = "fgrpo.json"
FORMAT_VERSION = 1
CHECKED_KEYS = ("max_slate", "max_rank", "prompt_style", "labels")  # a command's value must agree
LABEL_KINDS = ("numbers", "item_tokens")  # "[k]" candidate numbers, or one token per item


def labels_kind(tokenizer: Any) -> str:
    """What a model with this tokenizer names items by in its answers."""
    from fgrpo.format.items import uses_item_tokens

    return "item_tokens" if uses_item_tokens(tokenizer) else "numbers"


def answer_format(
    tokenizer: Any, max_slate: int | None, max_rank: int | None, prompt_style: str | None, max_new_tokens: int | None
) -> dict[str, Any]:
    """The ``fgrpo.json`` record of a model trained with these values (None: not trained on
    the answer format, e.g. next-item pretraining: the key is not checked)."""
    return {
        "max_slate": max_slate, "max_rank": max_rank, "prompt_style": prompt_style, "labels": labels_kind(tokenizer),
        "max_new_tokens": max_new_tokens, "format_version": FORMAT_VERSION,
    }  # fmt: skip


def write_answer_format(folder: str | Path, record: Mapping[str, Any]) -> None:
    """``folder/fgrpo.json`` (the folder exists: written after the weights)."""
    (Path(folder) / FORMAT_FILE).write_text(json.dumps(dict(record), indent=1) + "\n")


def read_answer_format(folder: str | Path) -> dict[str, Any] | None:
    """The folder's ``fgrpo.json``, or None when it has none (a builtin, a hub id, a plain
    Hugging Face folder). A file that is not a JSON object, or of a newer format version, is
    a ConfigError naming it."""
    from fgrpo.config import ConfigError

    path = Path(folder) / FORMAT_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a readable answer-format file ({e})") from None
    if not isinstance(record, dict):
        raise ConfigError(f"{path}: not a JSON object")
    version = record.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ConfigError(f"{path}: format_version {version!r} is not one this fgrpo reads (<= {FORMAT_VERSION})")
    return record


def default_constrained(record: Mapping[str, Any] | None) -> bool:
    """Whether greedy decoding is constrained when a command leaves ``constrained`` unset (null):
    on for a model trained with item-token labels (id-tiny: trained and evaluated under the
    constraint; decoding freely it writes no valid answer), off otherwise (the paper's protocol,
    where format errors count)."""
    return record is not None and record.get("labels") == "item_tokens"


def check_answer_format(folder: str | Path, given: Mapping[str, Any], key_prefix: str = "") -> dict[str, Any] | None:
    """The folder's record (None: it has none), after checking that every value in ``given``
    of a :data:`CHECKED_KEYS` key agrees with it; a ConfigError names the first key that does
    not, both values and the file. ``key_prefix`` names the config key holding the folder."""
    from fgrpo.config import ConfigError

    record = read_answer_format(folder)
    if record is None:
        return None
    for key in CHECKED_KEYS:
        if key in given and record.get(key) is not None and given[key] != record[key]:
            raise ConfigError(
                f"key '{key}' is {given[key]!r}, but {Path(folder) / FORMAT_FILE} says the model "
                f"{key_prefix}was trained with {key}={record[key]!r}; use that value (or another model)"
            )
    return record
