"""``fgrpo sft``: supervised warm start, saved as a normal Hugging Face model folder."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from fgrpo.config import save_config
from fgrpo.trainer.config import SFTConfig
from fgrpo.trainer.sft import FillerOrder, jsonl_logger, supervised_steps
from fgrpo.trainer.train import load_splits


def filler_order(policy: str, train: list, model: Any = None, tokenizer: Any = None) -> FillerOrder | None:
    """Non-relevant candidates preferred as slate fillers: hard negatives teach more."""
    if policy == "random":
        return None
    if policy == "model":  # the starting model's own preference order (id-tiny: docs/id-tiny.md)
        from fgrpo.baselines.scorers import order_by_score
        from fgrpo.format.items import uses_item_tokens
        from fgrpo.models.idtiny import next_item_scores

        if not uses_item_tokens(tokenizer):
            raise ValueError("key 'filler_policy': 'model' needs an item-token model (id-tiny, docs/id-tiny.md)")
        # scored by a frozen copy of the starting model (SFT changes the live one), lazily:
        # a run sees steps x batch examples, often far fewer than the ~97k of the split
        frozen = copy.deepcopy(model).eval()
        orders: dict[str, list[int]] = {}

        def order(ex: Any) -> list[int]:
            if ex.id not in orders:
                orders[ex.id] = order_by_score(next_item_scores(frozen, tokenizer, [ex])[0])
            return orders[ex.id]

        return order
    from fgrpo.baselines.scorers import BM25Ranker, PopularityRanker

    ranker = BM25Ranker() if policy == "bm25" else PopularityRanker().fit(train)
    return ranker.rank


def run_sft(cfg: SFTConfig) -> Path:
    from fgrpo.models.card import write_model_card
    from fgrpo.models.loading import add_lora, load_model, load_tokenizer

    torch.manual_seed(cfg.seed)
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    train, _ = load_splits(cfg)
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg.model, cfg.dtype, cfg.seed, cfg.tiny_hidden_size, cfg.tiny_num_layers)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if cfg.use_lora:
        model = add_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules)
    supervised_steps(
        model, tokenizer, train, cfg.max_steps, cfg.batch_size, cfg.learning_rate, cfg.seed,
        cfg.slate_size, cfg.max_slate, cfg.max_rank, cfg.warmup_steps, cfg.weight_decay, cfg.max_grad_norm,
        filler_order(cfg.filler_policy, train, model, tokenizer), cfg.slate_order, jsonl_logger(out / "metrics.jsonl"), cfg.log_every,
        target=cfg.target,
    )
    if cfg.use_lora:
        model = model.merge_and_unload()
    folder = out / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_model_card(folder, cfg, training="supervised warm start (fgrpo sft)" if cfg.target == "both" else f"decoupled SFT, target={cfg.target} (fgrpo sft)")
    return folder
