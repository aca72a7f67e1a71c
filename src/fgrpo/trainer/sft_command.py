"""``fgrpo sft``: supervised warm start, saved as a normal Hugging Face model folder."""

from __future__ import annotations

from pathlib import Path

import torch

from fgrpo.config import save_config
from fgrpo.trainer.config import SFTConfig
from fgrpo.trainer.sft import FillerOrder, jsonl_logger, supervised_steps
from fgrpo.trainer.train import load_splits


def filler_order(policy: str, train: list) -> FillerOrder | None:
    """Non-relevant candidates preferred as slate fillers: hard negatives teach more."""
    if policy == "random":
        return None
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
        filler_order(cfg.filler_policy, train), cfg.slate_order, jsonl_logger(out / "metrics.jsonl"), cfg.log_every,
        target=cfg.target,
    )
    if cfg.use_lora:
        model = model.merge_and_unload()
    folder = out / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_model_card(folder, cfg, training="supervised warm start (fgrpo sft)" if cfg.target == "both" else f"decoupled SFT, target={cfg.target} (fgrpo sft)")
    return folder
