"""Rollout engine: G sampled completions per prompt, with the prompt computed once.

Written by hand (not ``model.generate``) because ``generate(num_return_sequences=G)``
copies each prompt G times before the prefill, so the prompt's arithmetic is paid G
times; here each prompt is prefilled once and its key/value cache repeated for its G
completions. Decoding stops per row at EOS or at the stop string ``</RANK>``; stopped rows
leave the batch, which ends when every row has. Sampling is seeded through explicit
generators (one per prompt for reproducibility across batching and processes).
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any

import torch

from fgrpo.format.completion import STOP_STRING
from fgrpo.format.spans import PieceTable
from fgrpo.rollout import static_llama


@dataclass
class Rollouts:
    """Completions in group-major order: row ``p * G + g`` is rollout g of prompt p."""

    completions: list[list[int]]  # B token-id lists, EOS or stop string included
    stopped: list[bool]  # ended by EOS / stop string (False: hit max_new_tokens)
    seconds: float
    generated_tokens: int
    prefill_seconds: float = 0.0  # of ``seconds``: the prompts' forward (the rest is decoding)


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[n, L] ids and attention mask, padded on the left (prompts end at the same column)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s) :] = 1
    return ids, mask


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, uniforms: torch.Tensor | None) -> torch.Tensor:
    """One token per row from [n, V] logits: greedy when temperature == 0, else nucleus
    sampling by inverse CDF from the given [n] uniforms in [0, 1).

    Inverse CDF (not ``torch.multinomial``) so that a row's draw is a function of its own
    uniform: dropping finished rows or batching other prompts alongside changes nothing.
    """
    if temperature <= 0:
        return logits.argmax(-1)
    assert uniforms is not None, "sampling needs uniforms"
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # [n, V]
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        outside = sorted_p.cumsum(-1) - sorted_p > top_p  # keep the smallest prefix reaching top_p
        sorted_p = sorted_p.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    cdf = probs.cumsum(-1)  # [n, V], unnormalized after top-p
    target = (uniforms.to(cdf) * cdf[:, -1]).unsqueeze(-1)  # [n, 1]
    # first token whose cdf exceeds the target: zero-probability tokens can never be drawn
    return torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp(max=cdf.shape[-1] - 1)


def can_complete(pieces: list[str], stop: str) -> list[bool]:
    """Per token piece, whether appending it can complete ``stop`` in the decoded text: the
    piece holds ``stop``, or begins with a proper suffix of it (the rest written before).
    Only after such a token is the tail decoded and searched (id-tiny: after ``</RANK>``
    alone, not after every ``>`` and tag)."""
    suffixes = [stop[k:] for k in range(1, len(stop))]
    return [stop in p or any(p.startswith(s) for s in suffixes) for p in pieces]


# piece table -> stop string -> can_complete as a [V] tensor (dropped with the tokenizer's table)
_MAY_STOP: weakref.WeakKeyDictionary[PieceTable, dict[str, torch.Tensor]] = weakref.WeakKeyDictionary()

Generators = torch.Generator | list[torch.Generator] | None


def draw_uniforms(generator: Generators, num_prompts: int, group_size: int) -> torch.Tensor:
    """[P * G] uniforms for one decoding step. With one generator per prompt, each group's
    draws come from its own stream, so a group's samples do not depend on which other
    prompts share the batch (or the process)."""
    if isinstance(generator, list):
        if len(generator) != num_prompts:
            raise ValueError(f"got {len(generator)} generators for {num_prompts} prompts")
        return torch.cat([torch.rand(group_size, generator=g) for g in generator])
    return torch.rand(num_prompts * group_size, generator=generator)


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    group_size: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: Generators = None,
    stop_string: str = STOP_STRING,
    constraint: Any = None,
    fast: bool = True,
    static_cache: bool = True,
) -> Rollouts:
    """Sample ``group_size`` completions for each prompt (token ids, no padding).

    All prompts decode in one batch; a row leaves the batch (and its cache rows are dropped)
    as soon as it stops, so a long completion does not make finished rows run on.
    ``generator`` is one generator for all rows or a list with one per prompt.
    ``constraint`` (a :class:`fgrpo.format.constrained.FormatConstraint`) masks every token
    that would make a row's completion an invalid prefix of the output format.
    A constraint with a ``tracker`` (id-tiny's :class:`fgrpo.format.items.ItemConstraint`)
    keeps its state as tensors, advanced one token per step; ``fast=False`` calls its
    ``allowed`` on every row's tokens so far instead (the reference the tracker is tested
    equal to).
    ``static_cache``: decode a Llama-family model with :class:`fgrpo.rollout.static_llama.LlamaDecoder`
    (preallocated, prompt-shared key/value cache; logits within ~1e-6 of the model's forward);
    False, or a model it does not support, decodes through ``model(...)`` and its DynamicCache.
    """
    start = time.perf_counter()
    device = next(model.parameters()).device
    eos_ids = _eos_ids(tokenizer, model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    table = PieceTable.for_tokenizer(tokenizer)
    per_stop = _MAY_STOP.setdefault(table, {})
    if stop_string not in per_stop:  # once per tokenizer: a pass over the whole vocabulary
        per_stop[stop_string] = torch.tensor(can_complete(table.pieces, stop_string))
    may_stop = per_stop[stop_string].to(device)  # [V]
    eos = torch.tensor(eos_ids, device=device)

    ids, mask = left_pad(prompts, pad_id)
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    decoder = None
    if static_cache and static_llama.supports(model):  # the group reads its prompt's keys in place
        decoder = static_llama.LlamaDecoder(model, ids, mask, group_size, max_new_tokens)
        first = decoder.first_logits
    else:
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        cache.batch_repeat_interleave(group_size)  # one prefill, shared by the group
        first = out.logits[:, -1]
    prefill_seconds = time.perf_counter() - start
    logits = first.repeat_interleave(group_size, 0)  # [b, V] for the active rows
    mask = mask.repeat_interleave(group_size, 0)  # [b, L]
    next_pos = positions[:, -1:].repeat_interleave(group_size, 0) + 1  # [b, 1]

    n = len(prompts) * group_size
    tokens = torch.full((n, max_new_tokens), pad_id, dtype=torch.long, device=device)
    lengths = torch.zeros(n, dtype=torch.long, device=device)
    stopped = torch.zeros(n, dtype=torch.bool, device=device)
    active = torch.arange(n, device=device)  # original row of each batch row
    # a constraint with a tensor state machine (id-tiny's) advances it one token per step
    tracker = None
    if fast and constraint is not None and hasattr(constraint, "tracker"):
        tracker = constraint.tracker([r // group_size for r in range(n)], logits.shape[-1], device)
    for t in range(max_new_tokens):
        uniforms = draw_uniforms(generator, len(prompts), group_size) if temperature > 0 else None
        if tracker is not None:
            logits = logits.masked_fill(~tracker.allowed(), float("-inf"))
        elif constraint is not None:
            rows = active.tolist()
            allowed = constraint.allowed(
                [tokens[r, :t].tolist() for r in rows], [r // group_size for r in rows], logits.shape[-1]
            )
            logits = logits.masked_fill(~allowed.to(logits.device), float("-inf"))
        nxt = sample_next(logits, temperature, top_p, None if uniforms is None else uniforms[active])  # [b]
        if tracker is not None:
            tracker.advance(nxt)
        tokens[active, t] = nxt
        lengths[active] += 1
        ended = torch.isin(nxt, eos)
        check = may_stop[nxt].nonzero().flatten()
        if len(check):
            rows = active[check]
            tails = tokenizer.batch_decode(tokens[rows, max(0, t - 7) : t + 1].tolist(), skip_special_tokens=True)
            hit = torch.tensor([stop_string in s for s in tails], device=device, dtype=torch.bool)
            ended[check[hit]] = True
        stopped[active[ended]] = True
        if bool(ended.all()) or t == max_new_tokens - 1:
            break
        if bool(ended.any()):  # drop finished rows from the batch and the cache
            keep = (~ended).nonzero().flatten()
            if tracker is not None:
                tracker.select(keep)
            active, nxt = active[keep], nxt[keep]
            if decoder is None:
                cache.batch_select_indices(keep)
                mask, next_pos = mask[keep], next_pos[keep]
        if decoder is not None:  # every row is fed (a finished row its pad) and only active rows read
            logits = decoder.step(tokens[:, t])[active]
            continue
        mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
        out = model(
            input_ids=nxt.unsqueeze(1),
            attention_mask=mask,
            position_ids=next_pos,
            past_key_values=cache,
            use_cache=True,
        )
        cache = out.past_key_values
        logits = out.logits[:, -1]
        next_pos = next_pos + 1

    completions = [tokens[i, : lengths[i]].tolist() for i in range(n)]
    return Rollouts(
        completions=completions,
        stopped=stopped.tolist(),
        seconds=time.perf_counter() - start,
        generated_tokens=int(lengths.sum()),
        prefill_seconds=prefill_seconds,
    )


def _eos_ids(tokenizer: Any, model: Any) -> list[int]:
    ids: list[int] = []
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, gen_eos):
        if isinstance(value, int):
            ids.append(value)
        elif isinstance(value, list):
            ids.extend(v for v in value if isinstance(v, int))
    if not ids:
        raise ValueError("the tokenizer has no EOS token; set one (tokenizer.eos_token)")
    return sorted(set(ids))
