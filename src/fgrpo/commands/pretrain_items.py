"""``fgrpo pretrain-items``: build the id-tiny preset from a dataset's catalogue and pretrain
it on next items (docs/id-tiny.md).

config -> set up (seed, threads, output folder, config) -> build (tokenizer, model, user
sequences) -> run (:func:`fgrpo.trainer.pretrain.pretrain_items`) -> write (the model folder
and summary.json).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from fgrpo.baselines.scorers import order_by_score
from fgrpo.commands.setup import setup_run
from fgrpo.config.commands import PretrainItemsConfig
from fgrpo.data.schema import Example
from fgrpo.data.splits import read_splits, write_data_report
from fgrpo.evaluation.metrics import per_example_metrics
from fgrpo.models.answer_format import answer_format, write_answer_format
from fgrpo.models.card import write_model_card
from fgrpo.models.dropout import hidden_dropout
from fgrpo.models.idtiny import (
    ID_TINY_ID,
    build_id_tiny,
    build_item_tokenizer,
    catalogue_ids,
    init_item_embeddings,
    next_item_scores,
)
from fgrpo.trainer.pretrain import pretrain_items, train_sequences
from fgrpo.trainer.sft import jsonl_logger


def score_next_item(model: Any, tokenizer: Any, examples: list[Example]) -> dict[str, float]:
    """NDCG@5 and Hit@1 of ranking each pool by the next-item logits (valid split: a diagnostic)."""
    scores = next_item_scores(model, tokenizer, examples)
    rankings = [order_by_score(s)[:5] for s in scores]
    metrics = per_example_metrics(rankings, [ex.grades() for ex in examples], (1, 5))
    return {f"next_item/{k}": float(np.mean(v)) for k, v in metrics.items()} | {"next_item/num_examples": len(examples)}


def read_catalogue(dataset: str, skip_invalid: bool) -> list[str]:
    """The item ids of every split of ``dataset`` (the vocabulary of the model)."""
    splits = read_splits(dataset, ("train", "valid", "test"), skip_invalid=skip_invalid,
                         optional=("train", "valid", "test"), announce=False)  # fmt: skip
    ids = catalogue_ids(splits.values())
    if not ids:
        raise FileNotFoundError(f"{dataset}: no train/valid/test.jsonl with candidates")
    return ids


def run_pretrain_items(cfg: PretrainItemsConfig) -> Path:
    """Build the preset from the dataset's catalogue, pretrain it, save ``output_dir/model``."""
    cfg.validate()  # also when called from Python rather than through load_config
    out = setup_run(cfg)
    t0 = time.perf_counter()
    tokenizer = build_item_tokenizer(read_catalogue(cfg.dataset, cfg.skip_invalid_rows))
    model = build_id_tiny(len(tokenizer), cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.seed, cfg.attention_dropout)
    copied = None
    if cfg.item_embeddings_from:
        from fgrpo.baselines.sequential import SequentialScorer

        try:
            copied = init_item_embeddings(model, tokenizer, SequentialScorer.item_embeddings(cfg.item_embeddings_from))
        except ValueError as e:
            raise ValueError(f"key 'item_embeddings_from' ({cfg.item_embeddings_from}): {e}") from None
        print(f"item embeddings: {copied} of {len(tokenizer)} rows from {cfg.item_embeddings_from}")
    report: dict[str, Any] = {"files": {}}
    splits = read_splits(cfg.dataset, ("train",), skip_invalid=cfg.skip_invalid_rows, report=report)
    write_data_report(out, report)
    sequences = train_sequences(splits["train"])
    scored = cfg.eval_limit > 0
    valid = read_splits(cfg.dataset, ("valid",), skip_invalid=cfg.skip_invalid_rows, optional=("valid",),
                        announce=False)["valid"][: cfg.eval_limit] if scored else []  # fmt: skip
    validate = (lambda: score_next_item(model, tokenizer, valid)["next_item/NDCG@5"]) if valid and cfg.eval_every > 0 else None
    t_train = time.perf_counter()
    with hidden_dropout(model, cfg.hidden_dropout):
        losses = pretrain_items(
            model, tokenizer, sequences, cfg.max_steps, cfg.batch_size, cfg.seq_len, cfg.learning_rate, cfg.seed,
            cfg.warmup_steps, cfg.weight_decay, cfg.max_grad_norm, jsonl_logger(out / "metrics.jsonl"), cfg.log_every,
            validate, cfg.eval_every, cfg.patience,
        )  # fmt: skip
    summary: dict[str, Any] = {
        "vocab_size": len(tokenizer), "parameters": sum(p.numel() for p in model.parameters()),
        "item_embeddings_copied": copied, "train_sequences": len(sequences), "train_positions": int(sum(len(s) - 1 for s in sequences)),
        "first_loss": losses[0] if losses else None, "last_loss": float(np.mean(losses[-50:])) if losses else None,
        "pretrain_seconds": time.perf_counter() - t_train,
    }  # fmt: skip
    if scored and (Path(cfg.dataset) / "valid.jsonl").is_file():
        summary.update(score_next_item(model, tokenizer, valid))
    summary["total_seconds"] = time.perf_counter() - t0
    folder = out / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_model_card(folder, {"model": ID_TINY_ID, **vars(cfg)}, training="next-item pretraining over item tokens (fgrpo pretrain-items)",
                     metrics={k: v for k, v in summary.items() if k.startswith("next_item/") or k == "last_loss"})
    write_answer_format(folder, answer_format(tokenizer, None, None, None, None))  # item tokens, no answer format yet
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return folder
