"""What the training commands read, from their config's data keys: the (train, valid)
splits through the one reader (:mod:`fgrpo.data.splits`), and the prompt-length check."""

from __future__ import annotations

from typing import Any

from fgrpo.data.checks import structure_problems
from fgrpo.data.schema import Example
from fgrpo.data.splits import ToyTask, fit_splits, load_splits, model_context, say
from fgrpo.format.prompts import TASK_INTROS, encode_prompt


def toy_task(cfg: Any) -> ToyTask:
    """The toy task of a config's ``toy_pool_size``, ``toy_max_relevant`` and ``seed``."""
    return ToyTask(cfg.toy_pool_size, cfg.toy_max_relevant, cfg.seed)


def train_valid(cfg: Any, report: dict[str, Any] | None = None) -> tuple[list[Example], list[Example]]:
    """(train, valid) of a config with the data options (train, sft, dry-run), checked by
    :func:`check_splits`."""
    train, valid = load_splits(
        cfg.dataset, skip_invalid=cfg.skip_invalid_rows, toy=toy_task(cfg), toy_num_train=cfg.toy_num_train,
        toy_num_valid=cfg.toy_num_valid, report=report,
    )  # fmt: skip
    check_splits(cfg, {"train": train, "valid": valid}, report)
    return train, valid


def check_splits(cfg: Any, splits: dict[str, list[Example]], report: dict[str, Any] | None = None) -> list[str]:
    """``fgrpo check-data``'s structural checks on the splits a command read (bad rows and
    prompts over the context already stop it where they are read): each warning printed
    once, all of them and the histograms in ``report['checks']``. The generated toy task
    is not checked. Returns the warnings."""
    if cfg.dataset == "toy":
        return []
    warnings, stats = structure_problems(splits, TASK_INTROS, cfg.max_slate)
    for line in warnings:
        say(f"data warning: {line} (fgrpo check-data {cfg.dataset} for the whole report)")
    if report is not None:
        report["checks"] = {"warnings": warnings, **stats}
    return warnings


def fit_prompts(
    cfg: Any, tokenizer: Any, model: Any, splits: dict[str, list[Example]], new_tokens: int, report: dict[str, Any]
) -> dict[str, list[Example]]:
    """The examples of each split whose prompt plus ``new_tokens`` fits the context
    (``prompt_context``, null: the model's), by the config's ``prompt_overflow``."""

    def encode(ex: Example) -> list[int]:
        return encode_prompt(tokenizer, ex, cfg.max_slate, cfg.max_rank)

    context = cfg.prompt_context or model_context(model)
    return fit_splits(splits, encode, context, new_tokens, cfg.prompt_overflow, report)


def answer_limits(cfg: Any, prompt_style: str = "standard") -> dict[str, Any]:
    """The answer-format values a command is given (checked against a model folder's
    ``fgrpo.json``, :func:`fgrpo.models.answer_format.check_answer_format`)."""
    return {"max_slate": cfg.max_slate, "max_rank": cfg.max_rank, "prompt_style": prompt_style}
