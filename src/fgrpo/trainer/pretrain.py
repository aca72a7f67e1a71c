"""Next-item pretraining of an item-token model (the id-tiny preset, docs/id-tiny.md): the
SASRec objective with a Llama, over each user's item sequence rebuilt from the training split."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fgrpo.config.progress import Progress
from fgrpo.data.schema import Example
from fgrpo.format.items import HIST_TOKEN, item_token
from fgrpo.models.idtiny import id_key
from fgrpo.rollout.engine import left_pad
from fgrpo.trainer.schedule import warmup_cosine


def train_sequences(examples: list[Example]) -> list[list[str]]:
    """Each user's item sequence, rebuilt from training examples only.

    An example at position ``t`` says item ``t`` is its target (with ``meta.target_ids``,
    items ``t, t+1, ..`` are those targets, in order) and items ``t-len(h)..t-1`` are its
    history window ``h``; the union over a user's examples gives positions 0..max. A gap
    (e.g. ``max_train_per_user``) splits the sequence into segments."""
    by_user: dict[str, dict[int, str]] = {}
    for ex in examples:
        user, t = ex.meta.get("user"), ex.meta.get("position")
        hist = ex.meta.get("history_ids")
        target = ex.meta.get("target_ids") or [c for c, g in ex.relevance.items() if g > 0]
        if user is None or not isinstance(t, int) or not isinstance(hist, list) or (len(target) != 1 and "target_ids" not in ex.meta):
            raise ValueError(
                f"example '{ex.id}': next-item pretraining needs meta.user, meta.position, meta.history_ids "
                "and one relevant item or meta.target_ids (a sequential dataset made by `fgrpo prepare`)"
            )
        items = by_user.setdefault(str(user), {})
        for j, item in enumerate(target):
            items[t + j] = str(item)
        for j, h in enumerate(hist):
            items[t - len(hist) + j] = str(h)
    out: list[list[str]] = []
    for user in sorted(by_user, key=id_key):
        items = by_user[user]
        segment: list[str] = []
        last = None
        for pos in sorted(items):
            if last is not None and pos != last + 1 and segment:
                out.append(segment)
                segment = []
            segment.append(items[pos])
            last = pos
        if segment:
            out.append(segment)
    return [s for s in out if len(s) >= 2]


def next_item_batch(
    sequences: list[np.ndarray], weights: np.ndarray, batch_size: int, seq_len: int, hist_id: int, pad_id: int, rng: np.random.Generator
) -> dict[str, torch.Tensor]:
    """A left-padded batch of ``<HIST> i_a .. i_b`` windows (at most ``seq_len`` items, ending at
    a uniformly drawn position of a length-weighted user); labels are the next items."""
    users = rng.choice(len(sequences), size=batch_size, p=weights)
    rows = []
    for u in users:
        seq = sequences[u]
        end = int(rng.integers(2, len(seq) + 1))  # at least two items: one target after the first
        rows.append([hist_id, *seq[max(0, end - seq_len) : end].tolist()])
    ids, mask = left_pad(rows, pad_id)
    labels = ids.clone()
    labels[mask == 0] = -100
    labels[:, :-1][ids[:, :-1] == hist_id] = -100  # never predict <HIST> (it only starts rows)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def next_item_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of every next item (position t predicts token t+1)."""
    positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=positions).logits
    targets = batch["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100)


def pretrain_items(
    model: Any,
    tokenizer: Any,
    sequences: list[list[str]],
    steps: int,
    batch_size: int,
    seq_len: int,
    learning_rate: float,
    seed: int,
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    max_grad_norm: float = 1.0,
    log: Callable[[dict[str, float]], None] | None = None,
    log_every: int = 50,
    validate: Callable[[], float] | None = None,
    eval_every: int = 0,
    patience: int = 0,
) -> list[float]:
    """``steps`` AdamW steps of next-item cross-entropy over item-token sequences.

    ``validate`` (a score, higher is better; the valid split's next-item NDCG@5) every
    ``eval_every`` steps: early stopping as for the SASRec/GRU4Rec baselines. The best
    scoring weights are restored at the end, and training stops after ``patience``
    evaluations without a better score (0: never stops early). Without it this small Llama,
    which has no dropout, memorizes the training sequences (measured in docs/results.md)."""
    if steps > 0 and not sequences:  # else numpy fails on an empty draw with a message naming neither
        raise ValueError("next-item pretraining needs at least one training sequence of two or more items")
    rng = np.random.default_rng(seed)
    seqs = [np.array(tokenizer.convert_tokens_to_ids([item_token(i) for i in s]), dtype=np.int64) for s in sequences]
    lengths = np.array([len(s) - 1 for s in seqs], dtype=np.float64)
    weights = lengths / lengths.sum()  # every training position equally likely to end a window
    hist_id = tokenizer.convert_tokens_to_ids(HIST_TOKEN)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup_steps, steps))
    model.train()
    losses: list[float] = []
    best: tuple[float, int, dict[str, torch.Tensor] | None] = (-math.inf, 0, None)
    misses = 0
    bar = Progress(steps, "pretrain-items", every=log_every)
    for step in range(steps):
        t0 = time.perf_counter()
        if validate is not None and eval_every > 0 and step > 0 and step % eval_every == 0:
            score = validate()
            model.train()
            if log is not None:
                log({"step": step, "valid/next_item_NDCG@5": score})
            bar.postfix["valid_NDCG@5"] = score
            if score > best[0]:
                best, misses = (score, step, {k: v.detach().clone() for k, v in model.state_dict().items()}), 0
            else:
                misses += 1
                if patience and misses >= patience:
                    break
        batch = next_item_batch(seqs, weights, batch_size, seq_len, hist_id, tokenizer.pad_token_id, rng)
        loss = next_item_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        bar.update(1, loss=losses[-1])
        if log is not None and (step % log_every == 0 or step == steps - 1):
            log({"step": step + 1, "pretrain/loss": losses[-1], "pretrain/grad_norm": float(grad_norm),
                 "pretrain/lr": scheduler.get_last_lr()[0], "step_time_s": time.perf_counter() - t0})  # fmt: skip
    bar.close()
    if validate is not None and eval_every > 0 and best[2] is not None:
        final = validate()
        if log is not None:
            log({"step": len(losses), "valid/next_item_NDCG@5": final})
        if final < best[0]:  # the best evaluated weights, not the last ones
            model.load_state_dict(best[2])
            if log is not None:
                log({"step": len(losses), "note": f"restored the weights of step {best[1]} (valid next-item NDCG@5 {best[0]:.4f})"})
    model.eval()
    return losses
