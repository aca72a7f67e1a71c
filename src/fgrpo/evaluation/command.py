"""``fgrpo eval``: score a model (or a scorer baseline) on a split, the same way for all.

Writes ``metrics.json``, ``metrics.md`` (a Markdown table) and ``predictions.jsonl`` (one
line per example: id, slate, ranked ids, relevant ids, raw completion) to ``output_dir``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from fgrpo.config import option, save_config
from fgrpo.data.schema import Example, read_jsonl
from fgrpo.evaluation.evaluate import predict, score_predictions
from fgrpo.evaluation.metrics import format_markdown_table, metric_keys


@dataclass
class EvalConfig:
    """``fgrpo eval``: greedy decoding on a split, metrics through ir_measures."""

    model: str = option("runs/train/model", "Model folder to evaluate (ignored by the scorer methods).")
    method: Literal["model", "random", "popularity", "bm25"] = option("model", "What produces the rankings: the LLM, or a scorer baseline that ranks the pool.")
    dataset: str = option("toy", "'toy' or a folder made by `fgrpo prepare` (the split file and, for popularity, train.jsonl).")
    split: Literal["test", "valid", "train"] = option("test", "Which split to score.")
    limit: int | None = option(None, "Score only the first N examples of the split (None: all).")
    output_dir: str = option("runs/eval", "Where metrics.json, metrics.md and predictions.jsonl are written.")
    seed: int = option(0, "Seed (random baseline, toy data).")
    max_slate: int = option(10, "Parser limit on the slate (paper: 10); scorers' slate size.")
    max_rank: int = option(5, "Parser limit on the ranking (paper: 5); scorers' ranking size.")
    max_new_tokens: int = option(64, "Longest completion decoded.")
    batch_size: int = option(8, "Prompts decoded together.")
    ks: list[int] = option([1, 3, 5], "Cut-offs of Recall/Precision/Hit/NDCG.")
    dtype: Literal["float32", "bfloat16", "float16"] = option("float32", "Parameter dtype (float32 on CPU).")
    torch_threads: int = option(0, "CPU threads for torch (0: default).")
    toy_pool_size: int = option(8, "Toy task: candidates per pool.")
    toy_max_relevant: int = option(3, "Toy task: at most this many relevant per pool.")

    def validate(self) -> None:
        if self.max_rank > self.max_slate:
            raise ValueError(f"key 'max_rank' ({self.max_rank}) must not exceed 'max_slate' ({self.max_slate})")
        if self.limit is not None and self.limit < 1:
            raise ValueError("key 'limit' must be >= 1 or null")


def load_split(cfg: EvalConfig) -> tuple[list[Example], list[Example]]:
    """(examples to score, training examples for popularity)."""
    if cfg.dataset == "toy":
        from fgrpo.data.toy import make_toy_examples

        split_seed = {"train": cfg.seed, "valid": cfg.seed + 10_000, "test": cfg.seed + 20_000}[cfg.split]
        examples = make_toy_examples(cfg.limit or 200, cfg.toy_pool_size, cfg.toy_max_relevant, seed=split_seed)
        return examples, make_toy_examples(2000, cfg.toy_pool_size, cfg.toy_max_relevant, seed=cfg.seed)
    folder = Path(cfg.dataset)
    examples = read_jsonl(folder / f"{cfg.split}.jsonl")
    if cfg.limit is not None:
        examples = examples[: cfg.limit]
    train = read_jsonl(folder / "train.jsonl") if cfg.method == "popularity" else []
    return examples, train


def scorer_predictions(cfg: EvalConfig, examples: list[Example], train: list[Example]) -> list[dict[str, Any]]:
    from fgrpo.baselines.scorers import BM25Ranker, PopularityRanker, RandomRanker, rank_examples

    ranker = {"random": lambda: RandomRanker(cfg.seed), "bm25": BM25Ranker, "popularity": lambda: PopularityRanker().fit(train)}[cfg.method]()
    rows = rank_examples(ranker, examples, cfg.max_slate, cfg.max_rank)
    return [
        {**row, "relevant": sorted(ex.relevant_numbers()), "slate_valid": True, "rank_valid": True, "errors": [], "completion": None}
        for row, ex in zip(rows, examples, strict=True)
    ]


def run_eval(cfg: EvalConfig) -> dict[str, Any]:
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    examples, train = load_split(cfg)
    if cfg.method == "model":
        from fgrpo.ranker import Ranker

        ranker = Ranker.from_pretrained(cfg.model, cfg.dtype)
        preds = predict(ranker.model, ranker.tokenizer, examples, cfg.max_slate, cfg.max_rank, cfg.max_new_tokens, cfg.batch_size)
    else:
        preds = scorer_predictions(cfg, examples, train)
    metrics = score_predictions(preds, examples, tuple(cfg.ks))
    with (out / "predictions.jsonl").open("w") as fh:
        for p in preds:
            fh.write(json.dumps(p) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    name = cfg.method if cfg.method != "model" else Path(cfg.model).name or cfg.model
    table = format_markdown_table({name: metrics}, metric_keys(cfg.ks) + ["format/valid_rate"])
    (out / "metrics.md").write_text(table + "\n")
    print(table)
    return metrics
