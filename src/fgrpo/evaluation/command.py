"""``fgrpo eval``: score a model (or a scorer baseline) on a split, the same way for all.

Writes ``metrics.json``, ``metrics.md`` (a Markdown table) and ``predictions.jsonl`` (one
line per example: id, slate, ranked ids, relevant ids, raw completion) to ``output_dir``;
sasrec/gru4rec also write ``curve.json`` (per epoch: train loss and valid NDCG@5 / Hit@1, and
the restored best epoch).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from fgrpo.config import option, save_config
from fgrpo.data.schema import DataError, Example, read_jsonl, read_split, skipped_rows_lines
from fgrpo.data.splits import fit_to_context, model_context, say, write_data_report
from fgrpo.evaluation.evaluate import predict, score_predictions
from fgrpo.evaluation.metrics import format_markdown_table, metric_keys


@dataclass
class EvalConfig:
    """``fgrpo eval``: greedy decoding on a split, metrics through ir_measures."""

    model: str = option("runs/train/model", "Model folder to evaluate, or 'builtin:smollm2-135m-instruct' (ignored by the scorer methods).")
    method: Literal["model", "zeroshot", "two_step", "random", "popularity", "bm25", "dense", "sasrec", "gru4rec"] = option("model", "What produces the rankings: model (the LLM, one answer), zeroshot (the same with the zero-shot prompt, for an untrained instruct model), two_step (selector writes the slate, then ranker ranks it: docs/zero-shot-and-decoupled.md), or a scorer baseline that ranks the pool (dense: zero-shot MiniLM cosine; sasrec/gru4rec: trained here on train.jsonl first, early-stopped on valid.jsonl's NDCG@5).")
    prompt_style: Literal["standard", "zeroshot"] | None = option(None, "LLM methods: 'standard' (the prompt models are trained on) or 'zeroshot' (steps spelled out plus a worked example); null: zeroshot for method=zeroshot, standard otherwise.")
    selector: str | None = option(None, "two_step: model writing the slate (step 1); null: `model`.")
    ranker: str | None = option(None, "two_step: model ranking the selector's slate (step 2); null: `model`.")
    dataset: str = option("toy", "'toy' or a folder made by `fgrpo prepare` (the split file and, for popularity/sasrec/gru4rec, train.jsonl; sasrec/gru4rec early-stop on valid.jsonl).")
    split: Literal["test", "valid", "train"] = option("test", "Which split to score.")
    limit: int | None = option(None, "Score only the first N examples of the split (None: all).")
    output_dir: str = option("runs/eval", "Where metrics.json, metrics.md and predictions.jsonl are written.")
    seed: int = option(0, "Seed (random baseline, toy data, sasrec/gru4rec initialization and shuffling).")
    max_slate: int = option(10, "Parser limit on the slate (paper: 10); scorers' slate size.")
    max_rank: int = option(5, "Parser limit on the ranking (paper: 5); scorers' ranking size.")
    max_new_tokens: int = option(64, "Longest completion decoded.")
    batch_size: int = option(8, "Prompts decoded together.", bookkeeping=True)
    constrained: bool = option(False, "Constrain greedy decoding to the output format, so every output is valid (off: the paper's protocol, where format errors count).")
    ks: list[int] = option([1, 3, 5], "Cut-offs of Recall/Precision/Hit/NDCG.")
    dtype: Literal["float32", "bfloat16", "float16"] = option("float32", "Parameter dtype (float32 on CPU).")
    torch_threads: int = option(0, "CPU threads for torch (0: default).", bookkeeping=True)
    toy_pool_size: int = option(8, "Toy task: candidates per pool.")
    toy_max_relevant: int = option(3, "Toy task: at most this many relevant per pool.")
    dense_batch_size: int = option(64, "dense: texts encoded together by MiniLM.", bookkeeping=True)
    seq_epochs: int = option(200, "sasrec/gru4rec: the most training epochs (early stopping on valid usually ends far sooner: docs/baselines.md).")
    seq_patience: int = option(10, "sasrec/gru4rec: stop after this many valid evaluations without a better valid NDCG@5 and restore the best epoch's weights (the dataset's valid.jsonl; never the test split); 0: train seq_epochs epochs, no valid split read.")
    seq_eval_every: int = option(1, "sasrec/gru4rec: epochs between valid NDCG@5 evaluations.")
    seq_train_on: Literal["users", "windows"] = option("users", "sasrec/gru4rec: 'users' = each user's sequence rebuilt from train.jsonl (meta user/position), trained on once in chunks of seq_max_len + 1 (as the SASRec authors; ~10x faster per epoch); 'windows' = every training row's history + target.")
    seq_lr: float | None = option(None, "sasrec/gru4rec: Adam learning rate (None: the tuned value, 0.003 for both: docs/results/baselines_ml100k/tuning.json).")
    seq_batch_size: int = option(128, "sasrec/gru4rec: training sequences per step.")
    seq_hidden: int | None = option(None, "sasrec/gru4rec: embedding and hidden size (None: the tuned value, 64 sasrec / 128 gru4rec).")
    seq_blocks: int | None = option(None, "sasrec: self-attention blocks; gru4rec: GRU layers (None: the tuned value, 1 for both).")
    seq_heads: int = option(1, "sasrec: attention heads (must divide seq_hidden).")
    seq_max_len: int = option(50, "sasrec/gru4rec: items per training chunk and most recent history items fed to the model.")
    seq_dropout: float | None = option(None, "sasrec/gru4rec: dropout rate (None: the tuned value, 0.5 sasrec / 0.3 gru4rec).")
    skip_invalid_rows: bool = option(False, "Skip and count malformed data rows instead of stopping at the first (as in fgrpo train); the count is printed and written to metrics.json (data/skipped_rows) and output_dir/data_report.json.")
    prompt_overflow: Literal["error", "skip"] = option("error", "LLM methods: a prompt that, with max_new_tokens, does not fit the model's context: error (naming the example's file and line) or skip (not scored; counted in metrics.json as data/prompt_overflow_skipped). Never truncated.")
    prompt_context: int | None = option(None, "Context length the prompt_overflow check uses (null: the model's max_position_embeddings).")

    def seq_config(self) -> Any:
        """The :class:`~fgrpo.baselines.sequential.SeqConfig` of these keys, tuned defaults filled in."""
        from fgrpo.baselines.sequential import SeqConfig

        seq = SeqConfig(
            hidden=self.seq_hidden, blocks=self.seq_blocks, heads=self.seq_heads, max_len=self.seq_max_len,
            dropout=self.seq_dropout, epochs=self.seq_epochs, lr=self.seq_lr, batch_size=self.seq_batch_size,
            seed=self.seed, patience=self.seq_patience, eval_every=self.seq_eval_every, train_on=self.seq_train_on,
        )  # fmt: skip
        return seq.resolved(self.method) if self.method in ("sasrec", "gru4rec") else seq

    def validate(self) -> None:
        from fgrpo.config import check_output_dir
        from fgrpo.data.toy import TOY_WORDS
        from fgrpo.trainer.config import check_at_least, check_toy_pool

        check_output_dir(self.output_dir)
        check_at_least(self, 1, "max_slate", "max_rank", "max_new_tokens", "batch_size")
        check_at_least(self, 0, "torch_threads")
        if self.prompt_context is not None:
            check_at_least(self, 1, "prompt_context")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"key 'ks' must be a non-empty list of cut-offs >= 1, got {self.ks}")
        check_toy_pool(self.toy_pool_size, self.toy_max_relevant, len(TOY_WORDS))
        if self.method == "zeroshot" and self.prompt_style == "standard":
            raise ValueError("key 'prompt_style': method 'zeroshot' is the zeroshot prompt; use method=model for the standard one")
        if self.method != "two_step" and (self.selector is not None or self.ranker is not None):
            raise ValueError("keys 'selector' and 'ranker' are for method=two_step only")
        if self.max_rank > self.max_slate:
            raise ValueError(f"key 'max_rank' ({self.max_rank}) must not exceed 'max_slate' ({self.max_slate})")
        if self.limit is not None and self.limit < 1:
            raise ValueError("key 'limit' must be >= 1 or null")
        keys = ("dense_batch_size", "seq_epochs", "seq_batch_size", "seq_hidden", "seq_blocks", "seq_heads", "seq_max_len", "seq_eval_every")
        for key in keys:
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"key '{key}' must be >= 1, got {getattr(self, key)}")
        if self.seq_patience < 0:
            raise ValueError(f"key 'seq_patience' must be >= 0, got {self.seq_patience}")
        hidden = self.seq_config().hidden
        if hidden is not None and hidden % self.seq_heads:
            raise ValueError(f"key 'seq_heads' ({self.seq_heads}) must divide 'seq_hidden' ({hidden})")
        if self.seq_dropout is not None and not 0.0 <= self.seq_dropout < 1.0:
            raise ValueError(f"key 'seq_dropout' must be in [0, 1), got {self.seq_dropout}")
        if self.seq_lr is not None and self.seq_lr <= 0:
            raise ValueError(f"key 'seq_lr' must be > 0, got {self.seq_lr}")


TRAINED_METHODS = ("popularity", "sasrec", "gru4rec")  # read train.jsonl of the dataset
LLM_METHODS = ("model", "zeroshot", "two_step")  # decode slate + ranking answers (the rest score the pool)


def prompt_style(cfg: EvalConfig) -> Literal["standard", "zeroshot"]:
    """The prompt style an LLM method decodes with (the null default resolved)."""
    return cfg.prompt_style or ("zeroshot" if cfg.method == "zeroshot" else "standard")


def fit_eval_examples(cfg: EvalConfig, ranker: Any, examples: list[Example], report: dict[str, Any] | None) -> list[Example]:
    """The examples whose prompt fits the model's context (``prompt_overflow``)."""
    from fgrpo.format.prompts import encode_prompt

    style = prompt_style(cfg)
    tok = ranker.tokenizer
    context = cfg.prompt_context or model_context(ranker.model)
    return fit_to_context(
        examples, lambda ex: encode_prompt(tok, ex, cfg.max_slate, cfg.max_rank, style=style), context,
        cfg.max_new_tokens, cfg.prompt_overflow, cfg.split, report,
    )  # fmt: skip


def llm_predictions(cfg: EvalConfig, examples: list[Example], report: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Greedy answers of the LLM method(s): one answer (model, zeroshot) or two (two_step).
    Examples dropped by ``prompt_overflow=skip`` are removed from ``examples`` in place."""
    from fgrpo.ranker import Ranker

    style = prompt_style(cfg)
    if cfg.method != "two_step":
        ranker = Ranker.from_pretrained(cfg.model, cfg.dtype)
        examples[:] = fit_eval_examples(cfg, ranker, examples, report)
        return predict(
            ranker.model, ranker.tokenizer, examples, cfg.max_slate, cfg.max_rank, cfg.max_new_tokens, cfg.batch_size,
            constrained=cfg.constrained, style=style,
        )
    from fgrpo.evaluation.two_step import predict_two_step

    selector_path, ranker_path = cfg.selector or cfg.model, cfg.ranker or cfg.model
    selector = Ranker.from_pretrained(selector_path, cfg.dtype)
    ranker = selector if ranker_path == selector_path else Ranker.from_pretrained(ranker_path, cfg.dtype)
    examples[:] = fit_eval_examples(cfg, selector, examples, report)  # the slate prompt shows the whole pool
    return predict_two_step(
        selector.model, selector.tokenizer, ranker.model, ranker.tokenizer, examples, cfg.max_slate, cfg.max_rank,
        cfg.max_new_tokens, cfg.batch_size, constrained=cfg.constrained, style=style,
    )  # fmt: skip


def load_split(cfg: EvalConfig, report: dict[str, Any] | None = None) -> tuple[list[Example], list[Example]]:
    """(examples to score, training examples for the methods fitted on the train split)."""
    if cfg.dataset == "toy":
        from fgrpo.data.toy import make_toy_examples

        split_seed = {"train": cfg.seed, "valid": cfg.seed + 10_000, "test": cfg.seed + 20_000}[cfg.split]
        examples = make_toy_examples(cfg.limit or 200, cfg.toy_pool_size, cfg.toy_max_relevant, seed=split_seed)
        return examples, make_toy_examples(2000, cfg.toy_pool_size, cfg.toy_max_relevant, seed=cfg.seed)
    folder = Path(cfg.dataset)
    if not folder.is_dir():
        raise DataError(f"{folder}: dataset folder not found (key 'dataset'; make it with fgrpo prepare)")
    files = report.setdefault("files", {}) if report is not None else {}
    examples = read_split(folder / f"{cfg.split}.jsonl", cfg.skip_invalid_rows, files)
    if cfg.limit is not None:
        examples = examples[: cfg.limit]
    train = read_split(folder / "train.jsonl", cfg.skip_invalid_rows, files) if cfg.method in TRAINED_METHODS else []
    for line in skipped_rows_lines(files):
        say(line)
    return examples, train


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

    valid = load_valid(cfg) if cfg.seq_patience > 0 else None
    return SequentialScorer(cfg.method, cfg.seq_config()).fit(train, valid)  # type: ignore[arg-type]  # validate()d Literal


def load_valid(cfg: EvalConfig) -> list[Example]:
    """The valid split sasrec/gru4rec early-stop on (all of it, whatever ``split``/``limit``)."""
    if cfg.dataset == "toy":
        from fgrpo.data.toy import make_toy_examples

        return make_toy_examples(200, cfg.toy_pool_size, cfg.toy_max_relevant, seed=cfg.seed + 10_000)
    path = Path(cfg.dataset) / "valid.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {cfg.method} early-stops on the valid split; add it or set seq_patience=0")
    return read_jsonl(path, skip_invalid=cfg.skip_invalid_rows)


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
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
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
    with (out / "predictions.jsonl").open("w") as fh:
        for p in preds:
            fh.write(json.dumps(p) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    name = cfg.method if cfg.method != "model" else Path(cfg.model).name or cfg.model
    table = format_markdown_table({name: metrics}, metric_keys(cfg.ks) + ["format/valid_rate"])
    (out / "metrics.md").write_text(table + "\n")
    print(table)
    return metrics
