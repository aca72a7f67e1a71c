"""``fgrpo eval``: score a model (or a scorer baseline) on a split, the same way for all.

Writes ``metrics.json``, ``metrics.md`` (a Markdown table, and a "Warnings" section for a
degenerate result: fgrpo.evaluation.degenerate) and ``predictions.jsonl`` (one line per
example: its id, the slate, ranking and relevant ones as candidate numbers and as candidate
ids, the pool's ids, the raw completion; scorers: the scores) to ``output_dir``;
sasrec/gru4rec also write ``curve.json`` (per epoch: train loss and valid NDCG@5 / Hit@1, and
the restored best epoch) and ``scorer.pt``, the fitted scorer, which ``scorer_from`` loads in
a later eval instead of fitting again (``fgrpo compare``'s extra evaluations do).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from fgrpo.commands.inputs import check_splits
from fgrpo.commands.setup import setup_run
from fgrpo.config.commands import LLM_METHODS, TRAINED_METHODS, EvalConfig
from fgrpo.data.schema import Example
from fgrpo.data.splits import (
    TOY_EVAL_SIZE,
    ToyTask,
    eval_splits,
    fit_to_context,
    model_context,
    read_splits,
    write_data_report,
)
from fgrpo.evaluation.degenerate import degenerate_warnings, warnings_markdown
from fgrpo.evaluation.evaluate import predict, prediction_with_ids, score_predictions
from fgrpo.evaluation.metrics import format_markdown_table, metric_keys
from fgrpo.models.answer_format import check_answer_format, default_constrained, read_answer_format
from fgrpo.models.loading import load_trained


def prompt_style(cfg: EvalConfig) -> Literal["standard", "zeroshot"]:
    """The prompt style an LLM method decodes with (the null default resolved)."""
    return cfg.prompt_style or ("zeroshot" if cfg.method == "zeroshot" else "standard")


def fit_eval_examples(
    cfg: EvalConfig, model: Any, tok: Any, examples: list[Example], report: dict[str, Any] | None
) -> list[Example]:
    """The examples whose prompt fits the model's context (``prompt_overflow``)."""
    from fgrpo.format.prompts import encode_prompt

    style = prompt_style(cfg)
    context = cfg.prompt_context or model_context(model)
    return fit_to_context(
        examples, lambda ex: encode_prompt(tok, ex, cfg.max_slate, cfg.max_rank, style=style), context,
        cfg.max_new_tokens, cfg.prompt_overflow, cfg.split, report,
    )  # fmt: skip


def load_checked(cfg: EvalConfig, name: str, key: str) -> tuple[Any, Any]:
    """(model, tokenizer) of the folder in key ``key``, after checking that the limits and the
    prompt style asked for agree with its ``fgrpo.json`` (when it has one)."""
    given = {"max_slate": cfg.max_slate, "max_rank": cfg.max_rank, "prompt_style": prompt_style(cfg)}
    check_answer_format(name, given, key_prefix=f"in key '{key}' " if key != "model" else "")
    return load_trained(name, cfg.dtype)


def llm_predictions(cfg: EvalConfig, examples: list[Example], report: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Greedy answers of the LLM method(s): one answer (model, zeroshot) or two (two_step).
    Examples dropped by ``prompt_overflow=skip`` are removed from ``examples`` in place."""
    style = prompt_style(cfg)
    # null: as the (selector) model folder was trained (on for id-tiny's item-token labels)
    constrained = cfg.constrained if cfg.constrained is not None else default_constrained(read_answer_format(cfg.selector or cfg.model))
    if cfg.method != "two_step":
        model, tok = load_checked(cfg, cfg.model, "model")
        examples[:] = fit_eval_examples(cfg, model, tok, examples, report)
        return predict(
            model, tok, examples, cfg.max_slate, cfg.max_rank, cfg.max_new_tokens, cfg.batch_size,
            constrained=constrained, style=style, log_every=cfg.log_every,
        )
    from fgrpo.evaluation.two_step import predict_two_step

    selector_path, ranker_path = cfg.selector or cfg.model, cfg.ranker or cfg.model
    selector, selector_tok = load_checked(cfg, selector_path, "selector" if cfg.selector else "model")
    ranker, ranker_tok = (selector, selector_tok) if ranker_path == selector_path else load_checked(cfg, ranker_path, "ranker")
    examples[:] = fit_eval_examples(cfg, selector, selector_tok, examples, report)  # the slate prompt shows the whole pool
    return predict_two_step(
        selector, selector_tok, ranker, ranker_tok, examples, cfg.max_slate, cfg.max_rank,
        cfg.max_new_tokens, cfg.batch_size, constrained=constrained, style=style,
    )  # fmt: skip


def load_split(cfg: EvalConfig, report: dict[str, Any] | None = None) -> tuple[list[Example], list[Example]]:
    """(examples to score, training examples for the methods fitted on the train split; the
    toy task always has them)."""
    fitted = cfg.method in TRAINED_METHODS
    examples, train = eval_splits(
        cfg.dataset, cfg.split, limit=cfg.limit, fitted=fitted and cfg.train_dataset is None,
        skip_invalid=cfg.skip_invalid_rows, toy=ToyTask(cfg.toy_pool_size, cfg.toy_max_relevant, cfg.seed), report=report,
    )  # fmt: skip
    if fitted and cfg.train_dataset is not None:  # fitted on another folder of the same items
        train = read_splits(cfg.train_dataset, ("train",), skip_invalid=cfg.skip_invalid_rows, report=report)["train"]
    check_splits(cfg, {cfg.split: examples, **({"train": train} if train else {})}, report)
    return examples, train


def seq_config(cfg: EvalConfig) -> Any:
    """The :class:`~fgrpo.baselines.sequential.SeqConfig` of the ``seq_*`` keys, tuned defaults filled in."""
    from fgrpo.baselines.sequential import SeqConfig

    seq = SeqConfig(
        hidden=cfg.seq_hidden, blocks=cfg.seq_blocks, heads=cfg.seq_heads, max_len=cfg.seq_max_len,
        dropout=cfg.seq_dropout, epochs=cfg.seq_epochs, lr=cfg.seq_lr, batch_size=cfg.seq_batch_size,
        seed=cfg.seed, patience=cfg.seq_patience, eval_every=cfg.seq_eval_every, train_on=cfg.seq_train_on,
    )  # fmt: skip
    return seq.resolved(cfg.method) if cfg.method in ("sasrec", "gru4rec") else seq


def make_scorer(cfg: EvalConfig, train: list[Example]) -> Any:
    """The scorer baseline named by ``cfg.method``, fitted on ``train`` when it learns."""
    from fgrpo.baselines.scorers import BM25Scorer, PopularityScorer, RandomScorer

    if cfg.method == "random":
        return RandomScorer(cfg.seed)
    if cfg.method == "bm25":
        return BM25Scorer()
    if cfg.method == "popularity":
        return PopularityScorer().fit(train)
    if cfg.method == "dense":
        from fgrpo.baselines.dense import DenseScorer

        return DenseScorer(batch_size=cfg.dense_batch_size)
    from fgrpo.baselines.sequential import SequentialScorer

    scorer = SequentialScorer(cfg.method, seq_config(cfg))  # type: ignore[arg-type]  # validate()d Literal
    if cfg.scorer_from:
        return scorer.load(cfg.scorer_from, train)
    valid = load_valid(cfg) if cfg.seq_patience > 0 else None
    scorer.fit(train, valid)
    scorer.save(Path(cfg.output_dir) / "scorer.pt", train)
    return scorer


def load_valid(cfg: EvalConfig) -> list[Example]:
    """The valid split sasrec/gru4rec early-stop on (all of it, whatever ``split``/``limit``):
    the one of the folder they are fitted on (``train_dataset``, else ``dataset``)."""
    folder = cfg.train_dataset or cfg.dataset
    path = Path(folder) / "valid.jsonl"
    if folder != "toy" and not path.is_file():
        raise FileNotFoundError(f"{path}: {cfg.method} early-stops on the valid split; add it or set seq_patience=0")
    toy = ToyTask(cfg.toy_pool_size, cfg.toy_max_relevant, cfg.seed)
    return read_splits(folder, ("valid",), skip_invalid=cfg.skip_invalid_rows, toy=toy,
                       toy_sizes={"valid": TOY_EVAL_SIZE}, optional=("valid",), announce=False)["valid"]  # fmt: skip


def scorer_predictions(cfg: EvalConfig, examples: list[Example], train: list[Example]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """(one prediction per example, extra metrics: ``baseline/train_seconds`` for trained models)."""
    from fgrpo.baselines.scorers import rank_examples

    ranker = make_scorer(cfg, train)
    rows = rank_examples(ranker, examples, cfg.max_slate, cfg.max_rank)
    extra: dict[str, float] = {}
    if hasattr(ranker, "train_seconds"):
        extra = {"baseline/train_seconds": round(ranker.train_seconds, 2), "baseline/train_loss": ranker.train_loss}
    if getattr(ranker, "curve", None):
        # the training curve (epoch, train loss, valid NDCG@5 / Hit@1) and the restored epoch
        extra.update({"baseline/epochs_run": len(ranker.curve), "baseline/best_epoch": ranker.best_epoch})
        if ranker.best_valid == ranker.best_valid:  # early-stopped on valid
            extra["baseline/best_valid_NDCG@5"] = ranker.best_valid
        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        curve = {
            "method": cfg.method, "config": asdict(ranker.config), "best_epoch": ranker.best_epoch,
            "best_valid_NDCG@5": ranker.best_valid, "stopped_early": ranker.stopped_early, "curve": ranker.curve,
        }  # fmt: skip
        (out / "curve.json").write_text(json.dumps(curve, indent=1))
    preds = [
        {**row, "relevant": sorted(ex.relevant_numbers()), "slate_valid": True, "rank_valid": True, "errors": [], "completion": None}
        for row, ex in zip(rows, examples, strict=True)
    ]
    return preds, extra


def run_eval(cfg: EvalConfig) -> dict[str, Any]:
    """Score, then write metrics.json, metrics.md and predictions.jsonl; returns the metrics."""
    out = setup_run(cfg, seed=False)
    report: dict[str, Any] = {}
    examples, train = load_split(cfg, report)
    extra: dict[str, float] = {}
    if cfg.method in LLM_METHODS:
        preds = llm_predictions(cfg, examples, report)
    else:
        preds, extra = scorer_predictions(cfg, examples, train)
    write_data_report(out, report)
    metrics = score_predictions(preds, examples, tuple(cfg.ks))
    metrics.update(extra)
    metrics["data/skipped_rows"] = sum(f.get("skipped", 0) for f in report.get("files", {}).values())
    metrics["data/prompt_overflow_skipped"] = report.get("prompt_overflow", {}).get(cfg.split, {}).get("skipped", 0)
    metrics["warnings"] = degenerate_warnings(preds)
    with (out / "predictions.jsonl").open("w") as fh:
        for p, ex in zip(preds, examples, strict=True):
            fh.write(json.dumps(prediction_with_ids(p, ex)) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    name = cfg.method if cfg.method != "model" else Path(cfg.model).name or cfg.model
    table = format_markdown_table({name: metrics}, metric_keys(cfg.ks) + ["format/valid_rate"])
    (out / "metrics.md").write_text(table + warnings_markdown(metrics["warnings"]) + "\n")
    print(table)
    for warning in metrics["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return metrics
