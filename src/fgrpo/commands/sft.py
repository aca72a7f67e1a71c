"""``fgrpo sft``: supervised warm start, saved as a normal Hugging Face model folder.

config -> set up (seed, threads, output folder, config) -> build (data, model, filler
order) -> run (:func:`fgrpo.trainer.sft.supervised_steps`) -> write (the model folder)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fgrpo.commands.inputs import answer_limits, fit_prompts, train_valid
from fgrpo.commands.setup import setup_run
from fgrpo.config.commands import SFTConfig, check_resume_config
from fgrpo.config.progress import TimeBudget, parse_duration
from fgrpo.data.splits import write_data_report
from fgrpo.models.answer_format import answer_format, check_answer_format, write_answer_format
from fgrpo.trainer.sft import (
    SFT_STATE,
    FillerOrder,
    SFTStoppedEarly,
    jsonl_logger,
    latest_sft_state,
    supervised_steps,
)


class ModelFillerOrder:
    """Fillers in the frozen starting model's next-item preference order, scored lazily and
    in batches: ``prefetch`` scores a whole SFT step's examples in one forward pass (one
    example at a time was half of an id-tiny SFT step)."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.orders: dict[str, list[int]] = {}
        self.scores: dict[str, list[float]] = {}

    def prefetch(self, examples: list[Any]) -> None:
        from fgrpo.baselines.scorers import order_by_score
        from fgrpo.models.idtiny import next_item_scores

        todo = list({ex.id: ex for ex in examples if ex.id not in self.orders}.values())
        for ex, scores in zip(todo, next_item_scores(self.model, self.tokenizer, todo), strict=True):
            self.orders[ex.id], self.scores[ex.id] = order_by_score(scores), scores

    def __call__(self, example: Any) -> list[int]:
        if example.id not in self.orders:
            self.prefetch([example])
        return self.orders[example.id]

    def pool_probs(self, example: Any, temperature: float) -> list[float]:
        """Softmax of the model's pool logits / ``temperature`` (``soft_targets``)."""
        self(example)
        return pool_softmax(self.scores[example.id], temperature)


class ScorerFillerOrder:
    """Fillers in the pool order of a fitted SASRec/GRU4Rec (fitted here, or a ``scorer.pt``
    of `fgrpo eval` in ``teacher_models``), its histories encoded a whole SFT step at a time
    (the scorer caches each history's encoding, so ``rank`` only scores the pool)."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self.scores: dict[str, list[float]] = {}  # per example id: the order and soft_targets read them once

    def prefetch(self, examples: list[Any]) -> None:
        self.scorer.prepare(examples)

    def _scores(self, example: Any) -> list[float]:
        if example.id not in self.scores:
            self.scores[example.id] = self.scorer.scores(example)
        return self.scores[example.id]

    def __call__(self, example: Any) -> list[int]:
        from fgrpo.baselines.scorers import order_by_score

        return order_by_score(self._scores(example))  # = scorer.rank(example)

    def pool_probs(self, example: Any, temperature: float) -> list[float]:
        """Softmax of the scorer's pool scores / ``temperature`` (``soft_targets``)."""
        return pool_softmax(self._scores(example), temperature)


class FusedOrder:
    """Pool order of several orders fused by their mean rank (Borda; ties by the first
    order): the ensemble teacher of ``filler_policy=ensemble``."""

    def __init__(self, orders: list[FillerOrder]) -> None:
        self.orders = orders

    def prefetch(self, examples: list[Any]) -> None:
        for order in self.orders:
            if hasattr(order, "prefetch"):
                order.prefetch(examples)

    def __call__(self, example: Any) -> list[int]:
        ranks: dict[int, float] = {}
        first: dict[int, int] = {}
        for i, order in enumerate(self.orders):
            for r, k in enumerate(order(example)):
                ranks[k] = ranks.get(k, 0.0) + r
                if i == 0:
                    first[k] = r
        return sorted(ranks, key=lambda k: (ranks[k], first.get(k, len(first))))

    def pool_probs(self, example: Any, temperature: float) -> list[float]:
        """The teachers' pool distributions averaged (``soft_targets``): each teacher's
        softmax first, so no teacher's score scale outweighs the others'."""
        dists = []
        for order in self.orders:
            if not hasattr(order, "pool_probs"):
                raise ValueError("key 'soft_targets': every teacher must score the pool (a model or a SASRec/GRU4Rec fit)")
            dists.append(order.pool_probs(example, temperature))
        return [sum(col) / len(dists) for col in zip(*dists, strict=True)]


def pool_softmax(scores: Sequence[float], temperature: float) -> list[float]:
    """softmax(scores / temperature) over one pool (a ``-inf`` score, an item unseen in
    training, gets 0)."""
    import torch

    return torch.softmax(torch.tensor(scores, dtype=torch.float64) / temperature, 0).tolist()


def sequential_order(kind: str, train: list, valid: list, seed: int) -> FillerOrder:
    """The pool order of a SASRec or GRU4Rec trained here as the baselines' rows are (tuned
    defaults, early-stopped on ``valid``, seeded): a teacher for ``filler_policy``."""
    from fgrpo.baselines.sequential import SeqConfig, SequentialScorer

    return ScorerFillerOrder(SequentialScorer(kind, SeqConfig(seed=seed)).fit(train, valid))  # type: ignore[arg-type]


def filler_order(
    policy: str,
    train: list,
    model: Any = None,
    tokenizer: Any = None,
    valid: list | None = None,
    seed: int = 0,
    teachers: Sequence[Any] = (),
) -> FillerOrder | None:
    """Non-relevant candidates preferred as slate fillers: hard negatives teach more. With
    ``slate_order=model|rollin|teacher`` this order is also the teacher whose answer is the
    target: ``sasrec``/``gru4rec`` train that baseline first (on ``train``, early-stopped on
    ``valid``), ``ensemble`` fuses the model's, SASRec's and GRU4Rec's orders. ``teachers``
    (frozen orders from :func:`load_teachers`: other backbones, fitted SASRec/GRU4Rec) join the
    model's order in a mean-rank fusion, for ``model`` and ``ensemble``."""
    if policy == "random":
        return None
    if teachers and policy not in ("model", "ensemble"):
        raise ValueError(f"key 'teacher_models' needs filler_policy=model|ensemble, got filler_policy={policy}")
    if policy in ("sasrec", "gru4rec"):
        return sequential_order(policy, train, valid or [], seed)
    if policy == "ensemble":
        own = filler_order("model", train, model, tokenizer, teachers=teachers)
        assert own is not None
        return FusedOrder([own, *(sequential_order(k, train, valid or [], seed) for k in ("sasrec", "gru4rec"))])
    if policy == "model":  # the starting model's own preference order (id-tiny: docs/id-tiny.md)
        from fgrpo.format.items import uses_item_tokens

        if not uses_item_tokens(tokenizer):
            raise ValueError("key 'filler_policy': 'model' needs an item-token model (id-tiny, docs/id-tiny.md)")
        # scored by a frozen copy of the starting model (SFT changes the live one), lazily:
        # a run sees steps x batch examples, often far fewer than the ~97k of the split
        own = ModelFillerOrder(copy.deepcopy(model).eval(), tokenizer)
        if not teachers:
            return own
        return FusedOrder([own, *teachers])
    from fgrpo.baselines.scorers import BM25Scorer, PopularityScorer

    ranker = BM25Scorer() if policy == "bm25" else PopularityScorer().fit(train)
    return ranker.rank


def load_teachers(
    paths: Sequence[str], tokenizer: Any, dtype: str, train: Sequence[Any] = (), own: str | None = None
) -> list[FillerOrder]:
    """The frozen teacher orders of ``teacher_models``. A model folder must carry the
    student's tokenizer (the same item tokens), else its scores would name other candidates;
    a ``.pt`` file is a SASRec/GRU4Rec fit saved by `fgrpo eval` (its ``scorer.pt``), which
    must have been fitted on ``train``, this run's train split. The starting model's own folder
    (``own``), if listed, is skipped: it is in the fusion once, so one list serves every seed."""
    from fgrpo.baselines.sequential import SequentialScorer
    from fgrpo.models.loading import load_model, load_tokenizer

    want = tokenizer.get_vocab()
    teachers: list[FillerOrder] = []
    for path in paths:
        if own is not None and Path(path).resolve() == Path(own).resolve():
            continue
        if Path(path).suffix == ".pt":
            try:
                teachers.append(ScorerFillerOrder(SequentialScorer.from_saved(path, train)))
            except ValueError as err:
                raise ValueError(f"key 'teacher_models': {err}") from None
            continue
        if load_tokenizer(path).get_vocab() != want:
            raise ValueError(f"key 'teacher_models': {path} has another tokenizer than the starting model's "
                             "(a teacher must score the same item tokens: a backbone of the same dataset)")
        teachers.append(ModelFillerOrder(load_model(path, dtype).eval().requires_grad_(False), tokenizer))
    return teachers


def sft_target_budget(cfg: SFTConfig) -> int:
    """Tokens kept free after an SFT prompt for its target (a generous bound on the rendered
    ``<SLATE>[i] ...</SLATE><RANK>[i] > ...</RANK>``: 4 tokens an item, 16 for the tags)."""
    return 4 * (cfg.slate_size + cfg.max_rank) + 16


def last_sft_metrics(path: Path) -> dict[str, Any]:
    """The last logged step's ``sft/*`` values (the card's metrics)."""
    from fgrpo.trainer.metrics_log import read_metrics

    rows = [r for r in read_metrics(path) if "sft/loss" in r] if path.is_file() else []
    return {k: v for k, v in rows[-1].items() if k == "step" or k.startswith("sft/")} if rows else {}


def run_sft(cfg: SFTConfig, resume: bool = False) -> Path:
    """Train, then write ``output_dir/model`` (weights, tokenizer, card, fgrpo.json). With
    ``max_time``, a run that would overrun it saves its state, writes the model so far and
    ``stopped_early.json``, and returns; ``resume`` continues from that state exactly."""
    from fgrpo.commands.train import STOPPED_FILE, write_stopped
    from fgrpo.kernels.onednn import use_onednn_linears
    from fgrpo.models.card import write_model_card
    from fgrpo.models.dropout import hidden_dropout
    from fgrpo.models.loading import add_lora, enable_checkpointing, load_model, load_tokenizer

    budget = TimeBudget(parse_duration(cfg.max_time))
    if resume:
        check_resume_config(cfg, Path(cfg.output_dir) / "config.yaml")  # before it is overwritten
    state = latest_sft_state(cfg.output_dir) if resume else None
    out = setup_run(cfg)
    report: dict[str, Any] = {}
    train, valid = train_valid(cfg, report)
    split_train = train  # as read: what a teacher scorer.pt was fitted on (fit_prompts may drop rows)
    check_answer_format(cfg.model, answer_limits(cfg))  # a model folder that says how it answers
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg.model, cfg.dtype, cfg.seed, cfg.tiny_hidden_size, cfg.tiny_num_layers)
    # the target follows the prompt: up to slate_size + max_rank items, ~4 tokens each, plus tags
    train = fit_prompts(cfg, tokenizer, model, {"train": train}, sft_target_budget(cfg), report)["train"]
    write_data_report(out, report)
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
    if cfg.use_lora:
        model = add_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules)
    if cfg.onednn_linear:  # after LoRA: its adapters are new nn.Linear layers
        use_onednn_linears(model)
    teachers = load_teachers(cfg.teacher_models, tokenizer, cfg.dtype, split_train, own=cfg.model)
    fillers = filler_order(cfg.filler_policy, train, model, tokenizer, valid, cfg.seed, teachers)  # a frozen copy, before any hook
    stopped_at = None
    with hidden_dropout(model, cfg.hidden_dropout):
        try:
            supervised_steps(
                model, tokenizer, train, cfg.max_steps, cfg.batch_size, cfg.learning_rate, cfg.seed,
                cfg.slate_size, cfg.max_slate, cfg.max_rank, cfg.warmup_steps, cfg.weight_decay, cfg.max_grad_norm,
                fillers, cfg.slate_order, jsonl_logger(out / "metrics.jsonl"), cfg.log_every,
                target=cfg.target, constrained_loss=cfg.constrained_loss, micro_batch_size=cfg.micro_batch_size,
                budget=budget, state_dir=out / "checkpoints", resume_from=state,
                soft_targets=cfg.soft_targets, soft_temperature=cfg.soft_temperature,
            )
        except SFTStoppedEarly as e:
            stopped_at = e.step
            jsonl_logger(out / "metrics.jsonl")({"note": f"max_time ({cfg.max_time}) reached: stopped early at step "
                                                         f"{e.step} of {cfg.max_steps}; state in {e.state}; resume with --resume"})
            model.eval()
    if cfg.use_lora:
        model = model.merge_and_unload()
    folder = out / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    training = "supervised warm start (fgrpo sft)" if cfg.target == "both" else f"decoupled SFT, target={cfg.target} (fgrpo sft)"
    if stopped_at is not None:
        training += f", stopped early by max_time at step {stopped_at} of {cfg.max_steps}"
        write_stopped(out, "sft", stopped_at, cfg.max_steps, cfg.max_time)
    else:  # finished: a later --resume must not go back to a stop's state
        (out / STOPPED_FILE).unlink(missing_ok=True)
        for stale in (out / "checkpoints").glob(f"step-*/{SFT_STATE}"):
            stale.unlink()
    record = answer_format(tokenizer, cfg.max_slate, cfg.max_rank, "standard", sft_target_budget(cfg))
    write_model_card(folder, cfg, training=training, metrics=last_sft_metrics(out / "metrics.jsonl"), answer=record)
    write_answer_format(folder, record)
    return folder
