"""``fgrpo check-data FOLDER [model=...]``: check a dataset folder before hours of training.

config (:class:`~fgrpo.config.commands.CheckDataConfig`) -> set up (the output folder) ->
build (with ``model``: its tokenizer, context and answer format) -> run (the checks of
:mod:`fgrpo.data.checks`) -> write (``output_dir/check_data.json``; the readable report is
returned for the console). The exit status is non-zero when a check failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fgrpo.commands.setup import setup_run
from fgrpo.config.commands import CHECK_DATA_FALLBACK, CheckDataConfig
from fgrpo.data.checks import CheckReport, check_folder, report_text
from fgrpo.data.schema import Example
from fgrpo.format.prompts import TASK_INTROS

REPORT = "check_data.json"
DEFAULTS = CHECK_DATA_FALLBACK


def answer_values(cfg: CheckDataConfig) -> dict[str, Any]:
    """max_slate, max_rank, max_new_tokens, prompt_style: the config's, else the model
    folder's ``fgrpo.json``, else :data:`DEFAULTS`; a config value that contradicts the
    folder is a ConfigError naming the key."""
    from fgrpo.models.answer_format import check_answer_format

    given = {k: getattr(cfg, k) for k in DEFAULTS if getattr(cfg, k) is not None}
    record = check_answer_format(cfg.model, given) if cfg.model else None
    record = record or {}
    return {
        k: given.get(k, record.get(k) if record.get(k) is not None else v)
        for k, v in DEFAULTS.items()
    }


def prompt_encoder(
    cfg: CheckDataConfig, values: dict[str, Any]
) -> tuple[Callable[[Example], list[int]], int | None]:
    """(an example -> its prompt's token ids under the model's tokenizer, the context)."""
    from fgrpo.data.splits import model_context
    from fgrpo.format.prompts import encode_prompt
    from fgrpo.models.loading import load_model_config, load_tokenizer

    name = str(cfg.model)
    tokenizer = load_tokenizer(name)
    context = cfg.prompt_context or model_context(load_model_config(name))

    def encode(ex: Example) -> list[int]:
        return encode_prompt(
            tokenizer, ex, values["max_slate"], values["max_rank"], style=values["prompt_style"]
        )

    return encode, context


def run_check_data(cfg: CheckDataConfig) -> tuple[CheckReport, str]:
    """Run every check; write ``check_data.json``; return the report and its readable text."""
    cfg.validate()
    out = setup_run(cfg, save=False, seed=False)
    values = answer_values(cfg)
    encode, context = prompt_encoder(cfg, values) if cfg.model else (None, None)
    report = check_folder(
        cfg.dataset, cfg.splits, known_tasks=TASK_INTROS, max_slate=values["max_slate"],
        encode=encode, context=context, new_tokens=values["max_new_tokens"],
    )  # fmt: skip
    record = {
        "dataset": str(Path(cfg.dataset)),
        "model": cfg.model,
        "answer_format": values,
        **report.to_json(),
    }
    (out / REPORT).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return report, report_text(report, cfg.dataset)
