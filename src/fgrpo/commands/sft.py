"""``fgrpo sft``: supervised warm start, saved as a normal Hugging Face model folder.

config -> set up (seed, threads, output folder, config) -> build (data, model, filler
order) -> run (:func:`fgrpo.trainer.sft.supervised_steps`) -> write (the model folder)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from fgrpo.commands.inputs import answer_limits, fit_prompts, train_valid
from fgrpo.commands.setup import setup_run
from fgrpo.config.commands import SFTConfig
from fgrpo.data.splits import write_data_report
from fgrpo.models.answer_format import answer_format, check_answer_format, write_answer_format
from fgrpo.trainer.sft import FillerOrder, jsonl_logger, supervised_steps


class ModelFillerOrder:
    """Fillers in the frozen starting model's next-item preference order, scored lazily and
    in batches: ``prefetch`` scores a whole SFT step's examples in one forward pass (one
    example at a time was half of an id-tiny SFT step)."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.orders: dict[str, list[int]] = {}

    def prefetch(self, examples: list[Any]) -> None:
        from fgrpo.baselines.scorers import order_by_score
        from fgrpo.models.idtiny import next_item_scores

        todo = list({ex.id: ex for ex in examples if ex.id not in self.orders}.values())
        for ex, scores in zip(todo, next_item_scores(self.model, self.tokenizer, todo), strict=True):
            self.orders[ex.id] = order_by_score(scores)

    def __call__(self, example: Any) -> list[int]:
        if example.id not in self.orders:
            self.prefetch([example])
        return self.orders[example.id]


def filler_order(policy: str, train: list, model: Any = None, tokenizer: Any = None) -> FillerOrder | None:
    """Non-relevant candidates preferred as slate fillers: hard negatives teach more."""
    if policy == "random":
        return None
    if policy == "model":  # the starting model's own preference order (id-tiny: docs/id-tiny.md)
        from fgrpo.format.items import uses_item_tokens

        if not uses_item_tokens(tokenizer):
            raise ValueError("key 'filler_policy': 'model' needs an item-token model (id-tiny, docs/id-tiny.md)")
        # scored by a frozen copy of the starting model (SFT changes the live one), lazily:
        # a run sees steps x batch examples, often far fewer than the ~97k of the split
        return ModelFillerOrder(copy.deepcopy(model).eval(), tokenizer)
    from fgrpo.baselines.scorers import BM25Scorer, PopularityScorer

    ranker = BM25Scorer() if policy == "bm25" else PopularityScorer().fit(train)
    return ranker.rank


def sft_target_budget(cfg: SFTConfig) -> int:
    """Tokens kept free after an SFT prompt for its target (a generous bound on the rendered
    ``<SLATE>[i] ...</SLATE><RANK>[i] > ...</RANK>``: 4 tokens an item, 16 for the tags)."""
    return 4 * (cfg.slate_size + cfg.max_rank) + 16


def run_sft(cfg: SFTConfig) -> Path:
    """Train, then write ``output_dir/model`` (weights, tokenizer, card, fgrpo.json)."""
    from fgrpo.models.card import write_model_card
    from fgrpo.models.dropout import hidden_dropout
    from fgrpo.models.loading import add_lora, load_model, load_tokenizer

    out = setup_run(cfg)
    report: dict[str, Any] = {}
    train, _ = train_valid(cfg, report)
    check_answer_format(cfg.model, answer_limits(cfg))  # a model folder that says how it answers
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg.model, cfg.dtype, cfg.seed, cfg.tiny_hidden_size, cfg.tiny_num_layers)
    # the target follows the prompt: up to slate_size + max_rank items, ~4 tokens each, plus tags
    train = fit_prompts(cfg, tokenizer, model, {"train": train}, sft_target_budget(cfg), report)["train"]
    write_data_report(out, report)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if cfg.use_lora:
        model = add_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules)
    fillers = filler_order(cfg.filler_policy, train, model, tokenizer)  # a frozen copy, before any hook
    with hidden_dropout(model, cfg.hidden_dropout):
        supervised_steps(
            model, tokenizer, train, cfg.max_steps, cfg.batch_size, cfg.learning_rate, cfg.seed,
            cfg.slate_size, cfg.max_slate, cfg.max_rank, cfg.warmup_steps, cfg.weight_decay, cfg.max_grad_norm,
            fillers, cfg.slate_order, jsonl_logger(out / "metrics.jsonl"), cfg.log_every,
            target=cfg.target, constrained_loss=cfg.constrained_loss, micro_batch_size=cfg.micro_batch_size,
        )
    if cfg.use_lora:
        model = model.merge_and_unload()
    folder = out / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_model_card(folder, cfg, training="supervised warm start (fgrpo sft)" if cfg.target == "both" else f"decoupled SFT, target={cfg.target} (fgrpo sft)")
    write_answer_format(folder, answer_format(tokenizer, cfg.max_slate, cfg.max_rank, "standard", sft_target_budget(cfg)))
    return folder
