"""Supervised warm start: teach the output format before RL.

Target for an example (ours, following the paper's SFT description): the slate holds
every relevant candidate plus fillers up to ``slate_size``, in a shuffled order (the slate
is a set; relevant-first would teach a position shortcut) or, with ``slate_order="ascending"``,
by candidate number: still no shortcut, and a rule greedy decoding can follow without
repeating a number, which a few hundred shuffled examples do not teach (measured in
docs/results.md); ``slate_order="ranked"`` writes the slate in the ranking's order
(relevant first, then fillers in filler order: for id-tiny, whose fillers are ordered by
its own next-item scores, docs/id-tiny.md); the ranking lists the relevant
candidates first (higher grade first), then slate fillers, up to ``max_rank``. Loss is the
cross-entropy of the completion tokens (EOS included) only, never of the prompt.

Decoupled SFT (``target``): the same (slate, ranking) pair teaches two separate models.
``target="slate"``: the selection prompt (fgrpo.format.prompts, phase ``slate``) -> the
slate alone, ``<SLATE>…</SLATE>``; ``target="rank"``: the ranking prompt showing only the
gold slate's candidates -> the ranking alone, ``<RANK>…</RANK>``. At inference the two are
chained by fgrpo.evaluation.two_step, the ranker seeing the selector's slate, not the gold one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fgrpo.config.progress import Progress, TimeBudget
from fgrpo.data.schema import Example
from fgrpo.format.completion import RANK_OPEN, render_completion, render_ranking, render_slate
from fgrpo.format.items import candidate_labels
from fgrpo.format.prompts import encode_prompt
from fgrpo.trainer.schedule import warmup_cosine

FillerOrder = Callable[[Example], list[int]]  # candidate numbers, preferred fillers first
TARGETS = ("both", "slate", "rank")
SFT_STATE = "sft_state.pt"  # in checkpoints/step-N/: what `fgrpo sft --resume` continues from


class SFTStoppedEarly(Exception):  # noqa: N818 - a normal end of a run, not an error
    """The ``max_time`` budget ended the supervised steps after ``step`` steps; the state to
    continue from is in ``state``'s folder (``fgrpo sft --resume``)."""

    def __init__(self, step: int, state: Path) -> None:
        super().__init__(f"stopped early at step {step}")
        self.step, self.state = step, state


def save_sft_state(folder: Path, step: int, model: Any, optimizer: Any, scheduler: Any, rng: np.random.Generator,
                   order: np.ndarray, cursor: int) -> Path:  # fmt: skip
    """Everything the next step depends on, written to a temporary file and renamed (a kill
    leaves the old state or the new one): weights, AdamW, the schedule, the data order and
    every RNG. Returns the file."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    state = {
        "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "rng": rng.bit_generator.state, "order": order, "cursor": cursor, "torch_rng": torch.get_rng_state(),
    }  # fmt: skip
    tmp = folder / f".tmp-{SFT_STATE}"
    torch.save(state, tmp)
    os.replace(tmp, folder / SFT_STATE)
    return folder / SFT_STATE


def latest_sft_state(output_dir: str | Path) -> Path | None:
    """The newest ``checkpoints/step-N/sft_state.pt`` of an SFT run (None: none)."""
    found = sorted((Path(output_dir) / "checkpoints").glob(f"step-*/{SFT_STATE}"))
    return found[-1] if found else None


def sft_target(
    example: Example,
    slate_size: int,
    max_rank: int,
    rng: np.random.Generator,
    filler_order: FillerOrder | None = None,
    slate_order: str = "shuffled",
) -> tuple[list[int], list[int]]:
    """(slate, ranking) of the supervised target for ``example``."""
    rel = example.relevant_numbers()  # number -> grade
    relevant = sorted(rel, key=lambda k: (-rel[k], rng.random()))
    others = [k for k in range(1, example.num_candidates + 1) if k not in rel]
    if filler_order is None:
        fillers = [others[i] for i in rng.permutation(len(others))]
    else:
        fillers = [k for k in filler_order(example) if k not in rel]
    slate_fill = fillers[: max(0, slate_size - len(relevant))]
    slate = relevant[:slate_size] + slate_fill
    slate = [slate[i] for i in rng.permutation(len(slate))]  # drawn either way: same rng stream
    if slate_order == "ascending":
        slate = sorted(slate)
    elif slate_order == "ranked":  # the ranking's order: greedy decoding lists best first
        slate = relevant[:slate_size] + slate_fill
    elif slate_order == "model":
        return model_order_target(example, slate_size, max_rank, relevant, filler_order)
    elif slate_order == "teacher":  # distillation: the frozen model's own answer, labels unused
        return model_order_target(example, slate_size, max_rank, [], filler_order)
    elif slate_order == "rollin":
        return rollin_target(example, slate_size, max_rank, relevant, filler_order)
    ranking = (relevant[:slate_size] + slate_fill)[:max_rank]  # only slate members: a valid target
    return slate, ranking


def model_order_target(
    example: Example, slate_size: int, max_rank: int, relevant: list[int], filler_order: FillerOrder | None
) -> tuple[list[int], list[int]]:
    """``slate_order="model"``: the slate the frozen starting model would write itself (its
    top ``slate_size`` pool items, in its order), with every relevant candidate it missed
    replacing its lowest non-relevant picks at the end; the ranking puts the relevant ones
    first (by grade), then the rest of the slate in order. Trained with
    :func:`slate_skip` (the model's own picks before the first relevant one are not
    supervised), the slate learns where to *recover* the target from the prefixes greedy
    decoding will actually produce (no exposure bias: a target that is always first in
    training is never looked for again once the first pick misses), and the ranking learns
    to re-order the written slate. Measured in docs/results.md ("The one-pass ranker")."""
    if filler_order is None:
        raise ValueError("key 'slate_order': 'model' needs a teacher order: filler_policy=model|sasrec|gru4rec|ensemble")
    order = filler_order(example)
    top = set(order[:slate_size])
    slate = _with_relevant(order, slate_size, relevant, missed=[k for k in relevant if k not in top])  # missed: by grade
    rel_set = set(relevant)
    ranking = ([k for k in relevant if k in slate] + [k for k in slate if k not in rel_set])[:max_rank]
    return slate, ranking


def _with_relevant(order: list[int], size: int, relevant: list[int], missed: list[int] | None = None) -> list[int]:
    """The first ``size`` of ``order``, every relevant item it misses replacing its lowest
    non-relevant picks, at the end: in ``order``'s order, or in the order of ``missed``
    when given (the relevant items left out of ``order[:size]``)."""
    rel = set(relevant)
    top = order[:size]
    if missed is None:
        missed = [k for k in order[size:] if k in rel]
    missed = missed[:size]
    drop = set([k for k in reversed(top) if k not in rel][: len(missed)])  # the lowest non-relevant picks
    return [k for k in top if k not in drop] + missed


def rollin_target(
    example: Example, slate_size: int, max_rank: int, relevant: list[int], filler_order: FillerOrder | None
) -> tuple[list[int], list[int]]:
    """``slate_order="rollin"``: the answer the frozen starting model would write itself, in
    both phases (the roll-in): its top ``slate_size`` pool items in its order, and as ranking
    the first ``max_rank`` of that slate in the same order, a relevant item either misses
    taking the last non-relevant place. :func:`rollin_labels` then labels every item
    position before a relevant one with that relevant item (the oracle's action there), so
    each position learns "given these picks, which are not relevant, the next pick is the
    relevant one": the ranking too learns to find the target after a wrong first pick,
    which a target that is always ranked first never teaches (docs/results.md)."""
    if filler_order is None:
        raise ValueError("key 'slate_order': 'rollin' needs a teacher order: filler_policy=model|sasrec|gru4rec|ensemble")
    order = filler_order(example)
    order = order + [k for k in relevant if k not in order]  # a scorer that leaves one out: still covered
    slate = _with_relevant(order, slate_size, relevant)
    ranking = _with_relevant(slate, max_rank, relevant)
    return slate, ranking


def rollin_labels(tokenizer: Any, example: Example, completion: list[int]) -> list[int]:
    """Labels of a roll-in completion (item tokens, :func:`rollin_target`): within each phase,
    an item position is labelled with the first relevant item at or after it in that phase
    (itself when it is relevant); positions after the phase's last relevant item, and every
    non-item token, keep their own token."""
    labels = candidate_labels(tokenizer, example)
    if labels is None:
        raise ValueError("slate_order=rollin needs an item-token model (one token per candidate)")
    rel_tokens = set(tokenizer.convert_tokens_to_ids([labels[k - 1] for k in example.relevant_numbers()]))
    item_tokens = set(tokenizer.convert_tokens_to_ids(labels))
    rank_open = tokenizer.convert_tokens_to_ids(RANK_OPEN) if RANK_OPEN in tokenizer.get_vocab() else None
    out = list(completion)
    nxt = None  # the next relevant token of the current phase, scanning right to left
    for i in range(len(completion) - 1, -1, -1):
        tok = completion[i]
        if tok == rank_open:
            nxt = None  # the slate phase has its own relevant items
        elif tok in rel_tokens:
            nxt = tok
        elif tok in item_tokens and nxt is not None:
            out[i] = nxt
    return out


def slate_skip(example: Example, slate: list[int]) -> int:
    """Leading slate items before the first relevant one (left unsupervised by ``slate_order=model``)."""
    rel = example.relevant_numbers()
    return next((i for i, k in enumerate(slate) if k in rel), len(slate))


def encode_sft_example(
    tokenizer: Any, example: Example, slate: list[int], ranking: list[int], max_slate: int, max_rank: int,
    target: str = "both",
    skip: int = 0,
    relabel: bool = False,
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) with the prompt masked out of the labels (-100); ``target``:
    ``both`` (one-pass answer), ``slate`` (selector) or ``rank`` (ranker, shown ``slate``).
    ``skip``: the first ``skip`` slate items are not supervised either (item-token models,
    one token per item: :func:`model_order_target`). ``relabel``: the roll-in labels of
    :func:`rollin_labels` (``slate_order="rollin"``)."""
    labels = candidate_labels(tokenizer, example)  # item tokens for item-token models, else None
    if target == "both":
        prompt, text = encode_prompt(tokenizer, example, max_slate, max_rank), render_completion(slate, ranking, labels)
    elif target == "slate":
        prompt, text = encode_prompt(tokenizer, example, max_slate, max_rank, phase="slate"), render_slate(slate, labels)
    elif target == "rank":
        prompt = encode_prompt(tokenizer, example, max_slate, max_rank, phase="rank", slate=slate)
        text = render_ranking(ranking, labels)
    else:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    completion = tokenizer(text, add_special_tokens=False)["input_ids"]
    completion = completion + [tokenizer.eos_token_id]
    supervised = list(completion)
    if relabel:
        if target != "both":
            raise ValueError("slate_order=rollin supports target=both only")
        supervised = rollin_labels(tokenizer, example, completion)
    if skip:
        if labels is None or target == "rank":
            raise ValueError("unsupervised slate items (slate_order=model) need an item-token model and a slate target")
        supervised[1 : 1 + skip] = [-100] * skip  # after <SLATE>: one token per item
    return prompt + completion, [-100] * len(prompt) + supervised


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded batch: every sequence ends at the last column, so the completions sit in
    the last ``keep`` columns and the LM head need only run there (``logits_to_keep``)."""
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, width - len(x) :] = torch.tensor(x)
        labels[i, width - len(y) :] = torch.tensor(y)
        mask[i, width - len(x) :] = 1
    supervised = (labels != -100).any(0).nonzero()
    keep = width - int(supervised.min()) + 1 if len(supervised) else 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, "keep": torch.tensor(keep)}


def completion_loss(
    model: Any, batch: dict[str, torch.Tensor], allowed: torch.Tensor | None = None, normalizer: int | None = None,
    soft: torch.Tensor | None = None, soft_weight: float = 0.0,
) -> torch.Tensor:
    """Mean cross-entropy over the supervised (completion) tokens, the LM head run only on
    the last ``keep`` positions: on a 500-token prompt that is most of the head's cost.
    ``allowed`` ([n, keep-1, V] bool): the softmax of each position over the tokens the
    decoding constraint allows there (``constrained_loss``). ``normalizer``: divide the
    summed cross-entropy by this count instead (the supervised tokens of the whole batch,
    when ``batch`` is one micro-batch of it: the micro-batches' losses then add up to the
    batch's, and so do their gradients). ``soft`` ([n, keep-1, V], :func:`soft_item_targets`)
    and ``soft_weight``: :func:`mixed_cross_entropy` instead (``soft_targets``)."""
    keep = int(batch["keep"])
    positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=positions, logits_to_keep=keep
    ).logits  # [n, keep, V]
    targets = batch["labels"][:, -keep + 1 :] if keep > 1 else batch["labels"][:, :0]  # [n, keep-1]
    logits = logits[:, :-1].float()
    if allowed is not None:
        logits = logits.masked_fill(~allowed.to(logits.device), float("-inf"))
    if soft is not None and soft_weight > 0:
        return mixed_cross_entropy(logits, targets, soft.to(logits.device), soft_weight, normalizer)
    flat_logits, flat_targets = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    if normalizer is None:
        return torch.nn.functional.cross_entropy(flat_logits, flat_targets, ignore_index=-100)
    return torch.nn.functional.cross_entropy(flat_logits, flat_targets, ignore_index=-100, reduction="sum") / normalizer


def mixed_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, soft: torch.Tensor, soft_weight: float, normalizer: int | None = None
) -> torch.Tensor:
    """Cross-entropy of ``logits`` [n, T, V] against the labels ``targets`` [n, T] (-100: no
    loss), where ``soft`` [n, T, V] has mass mixed with the cross-entropy toward that
    distribution: (1 - w) * CE(label) + w * sum_v soft[v] * -log p[v], w = ``soft_weight``
    (knowledge distillation's soft-target term; the hard term keeps the written item's
    token). Summed over the labelled positions and divided by ``normalizer`` (None: their
    count). A ``-inf`` logit (a token the constraint forbids) carries no soft mass."""
    logp = torch.log_softmax(logits, -1)
    labelled = targets != -100
    hard = -logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    toward = -(soft * logp.masked_fill(soft == 0, 0.0)).sum(-1)
    per = torch.where(soft.sum(-1) > 0, (1 - soft_weight) * hard + soft_weight * toward, hard)
    total = per.masked_fill(~labelled, 0.0).sum()
    return total / (normalizer if normalizer is not None else max(1, int(labelled.sum())))


def soft_item_targets(
    allowed: torch.Tensor, targets: torch.Tensor, candidate_tokens: list[list[int]], probs: list[list[float]]
) -> torch.Tensor:
    """[n, T, V] soft targets of :func:`mixed_cross_entropy`: at each position whose label is
    one of its row's candidates' item tokens (``candidate_tokens[i][k-1]``: candidate k's
    token), the row's teacher pool distribution (``probs[i][k-1]``) kept on the tokens
    ``allowed`` there ([n, T, V] bool, :func:`constrained_allowed`: the pool items not yet
    written) and renormalized; all zero elsewhere (the closing tags, ``>``, unlabelled)."""
    n, _, vocab = allowed.shape
    weight, is_candidate = torch.zeros(n, vocab), torch.zeros(n, vocab, dtype=torch.bool)
    for i, (tokens, p) in enumerate(zip(candidate_tokens, probs, strict=True)):
        weight[i, tokens] = torch.tensor(p, dtype=torch.float32)
        is_candidate[i, tokens] = True
    at_item = is_candidate.gather(1, targets.clamp(min=0)) & (targets != -100)  # [n, T]
    soft = allowed.float() * weight.unsqueeze(1) * at_item.unsqueeze(-1)
    mass = soft.sum(-1, keepdim=True)
    return torch.where(mass > 0, soft / mass.clamp(min=1e-30), soft)


def supervised_count(batch: list[tuple[list[int], list[int]]]) -> int:
    """Tokens that carry a loss in ``batch`` ((input_ids, labels) pairs): the first label is
    never one (no position predicts it)."""
    return sum(sum(1 for y in labels[1:] if y != -100) for _, labels in batch)


def batch_loss(
    model: Any, tokenizer: Any, examples: list[Example], batch: list[tuple[list[int], list[int]]],
    micro_batch_size: int, device: Any, constrained: bool, max_slate: int, max_rank: int,
    soft_probs: list[list[float]] | None = None, soft_weight: float = 0.0,
) -> float:  # fmt: skip
    """Forward and backward of one optimizer step's batch, ``micro_batch_size`` examples at a
    time (0: all at once), the loss normalized over the whole batch; returns the loss.
    ``soft_probs`` (per example, the teacher's pool distribution; needs ``constrained``):
    soft targets of weight ``soft_weight`` at the item positions (:func:`soft_item_targets`).

    Why micro-batches: the activations kept for backward grow with the rows of one forward
    (padded to the longest prompt), so one example at a time holds a quarter of a batch of
    four's, and without padding (one row) attention takes sdpa's causal kernel."""
    micro = micro_batch_size or len(batch)
    total = max(1, supervised_count(batch))
    loss_sum = 0.0
    for start in range(0, len(batch), micro):
        part, part_examples = batch[start : start + micro], examples[start : start + micro]
        inputs = {k: v.to(device) for k, v in collate(part, tokenizer.pad_token_id).items()}
        allowed, soft = None, None
        if constrained:
            width = max(0, int(inputs["keep"]) - 1)
            allowed = constrained_allowed(tokenizer, part_examples, part, width, max_slate, max_rank)
            if soft_probs is not None and soft_weight > 0:
                from fgrpo.format.items import candidate_labels

                tokens = [tokenizer.convert_tokens_to_ids(candidate_labels(tokenizer, ex)) for ex in part_examples]
                labels = inputs["labels"][:, -width:] if width else inputs["labels"][:, :0]
                soft = soft_item_targets(allowed, labels.cpu(), tokens, soft_probs[start : start + micro])
        loss = completion_loss(model, inputs, allowed, normalizer=total, soft=soft, soft_weight=soft_weight)
        loss.backward()
        loss_sum += loss.item()
    return loss_sum


def constrained_allowed(
    tokenizer: Any, examples: list[Example], batch: list[tuple[list[int], list[int]]], width: int,
    max_slate: int, max_rank: int,
) -> torch.Tensor:  # fmt: skip
    """[n, width, V] masks of :func:`completion_loss` for one-pass targets: each row's
    completion (its last tokens, left-padded batch) gets the constraint's allowed sets, the
    positions before it allow everything (they carry no label)."""
    from fgrpo.format.constrained import allowed_masks, decoding_constraint

    constraint = decoding_constraint(tokenizer, examples, max_slate, max_rank)
    completions = [ids[next(i for i, y in enumerate(labels) if y != -100) :] for ids, labels in batch]  # <SLATE> on
    vocab = len(tokenizer)
    per_row = allowed_masks(constraint, completions, list(range(len(examples))), vocab)  # [n, Tc, V]
    out = torch.ones((len(batch), width, vocab), dtype=torch.bool)
    for i, comp in enumerate(completions):
        c = len(comp)
        out[i, width - c :] = per_row[i, :c]
    return out



def supervised_steps(
    model: Any,
    tokenizer: Any,
    examples: list[Example],
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    slate_size: int,
    max_slate: int,
    max_rank: int,
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    max_grad_norm: float = 1.0,
    filler_order: FillerOrder | None = None,
    slate_order: str = "shuffled",
    log: Callable[[dict[str, float]], None] | None = None,
    log_every: int = 10,
    desc: str = "sft",
    target: str = "both",
    constrained_loss: bool = False,
    micro_batch_size: int = 0,
    budget: TimeBudget | None = None,
    state_dir: Path | None = None,
    resume_from: Path | None = None,
    soft_targets: float = 0.0,
    soft_temperature: float = 1.0,
) -> list[float]:
    """Run ``steps`` AdamW steps of completion-only cross-entropy; returns the losses.
    ``budget`` (``max_time``): before a step that would overrun it, the state is saved to
    ``state_dir/step-N/`` and :class:`SFTStoppedEarly` raised; ``resume_from``: such a state
    file, continued from exactly (the same batches, targets and updates as one run).
    ``target``: what is supervised (module docstring): both phases, the slate or the ranking.
    ``constrained_loss``: each position's softmax over the tokens the decoding constraint
    allows there (item-token models, one-pass target): the distribution constrained greedy
    decoding reads, instead of the whole vocabulary. ``micro_batch_size``: examples per
    forward and backward (0: the whole batch; same update either way, :func:`batch_loss`).
    ``soft_targets`` (weight) and ``soft_temperature``: soft targets from ``filler_order``'s
    ``pool_probs`` (its teachers' pool distributions) at the item positions; needs
    ``constrained_loss`` (the allowed items they are renormalized over)."""
    if constrained_loss and target != "both":
        raise ValueError("key 'constrained_loss' supports target=both only")
    if soft_targets > 0 and (not constrained_loss or not hasattr(filler_order, "pool_probs")):
        raise ValueError("key 'soft_targets' needs constrained_loss and a teacher that scores the pool "
                         "(filler_policy=model|sasrec|gru4rec|ensemble)")
    rng = np.random.default_rng(seed)
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    total = max(1, steps)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup_steps, total))
    model.train()
    order = rng.permutation(len(examples))
    cursor, losses, start = 0, [], 0
    if resume_from is not None:
        saved = torch.load(resume_from, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        rng.bit_generator.state = saved["rng"]
        order, cursor, start = saved["order"], int(saved["cursor"]), int(saved["step"])
        torch.set_rng_state(saved["torch_rng"])
    bar = Progress(steps, desc, every=log_every, initial=start)
    for step in range(start, steps):
        if budget is not None and budget.next_would_exceed():
            bar.close()
            folder = (state_dir or Path(".")) / f"step-{step:06d}"
            raise SFTStoppedEarly(step, save_sft_state(folder, step, model, optimizer, scheduler, rng, order, cursor))
        t0 = time.perf_counter()
        b0 = budget.clock() if budget is not None else 0.0
        step_examples = []
        for _ in range(batch_size):
            if cursor == len(order):
                order, cursor = rng.permutation(len(examples)), 0
            step_examples.append(examples[order[cursor]])
            cursor += 1
        if hasattr(filler_order, "prefetch"):  # a model-scored order: one batched forward per step
            filler_order.prefetch(step_examples)
        batch = []
        for ex in step_examples:
            slate, ranking = sft_target(ex, slate_size, max_rank, rng, filler_order, slate_order)
            skip = slate_skip(ex, slate) if slate_order == "model" else 0
            batch.append(encode_sft_example(tokenizer, ex, slate, ranking, max_slate, max_rank, target, skip,
                                            relabel=slate_order == "rollin"))
        optimizer.zero_grad(set_to_none=True)
        soft = [filler_order.pool_probs(ex, soft_temperature) for ex in step_examples] if soft_targets > 0 else None  # type: ignore[union-attr]
        loss = batch_loss(model, tokenizer, step_examples, batch, micro_batch_size, device, constrained_loss, max_slate, max_rank,
                          soft, soft_targets)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        scheduler.step()
        losses.append(loss)
        bar.update(1, loss=losses[-1])
        if budget is not None:
            budget.record(budget.clock() - b0)
        if log is not None and (step % log_every == 0 or step == steps - 1):
            log({
                "step": step + 1,
                "sft/loss": losses[-1],
                "sft/grad_norm": float(grad_norm),
                "sft/lr": scheduler.get_last_lr()[0],
                "step_time_s": time.perf_counter() - t0,
            })
    bar.close()
    optimizer.zero_grad(set_to_none=True)  # the last step's gradients would add to the caller's next backward
    model.eval()
    return losses


def jsonl_logger(path: Path) -> Callable[[dict[str, float]], None]:
    path.parent.mkdir(parents=True, exist_ok=True)

    def log(row: dict[str, float]) -> None:
        with path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    return log
