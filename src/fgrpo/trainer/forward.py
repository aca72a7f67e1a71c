"""Log-probabilities of completions under the policy, for one prompt group.

With ``share_prefix`` the group's prompt runs once, its key/value cache is repeated for
the G completions, and autograd sums the G completions' gradients into that one prompt
pass: the same gradient as G concatenated sequences at a fraction of the prompt's
arithmetic (tests/test_forward.py checks equality against the plain path).
"""

from __future__ import annotations

from typing import Any

import torch


def pad_right(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[n, T] ids and bool mask, padded on the right."""
    width = max(1, max(len(s) for s in seqs))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = True
    return ids, mask


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """log π(target) from [n, T, V] logits at the sampling temperature. -> [n, T]."""
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def completion_logprobs(
    model: Any,
    prompt: list[int],
    completions: list[list[int]],
    pad_id: int,
    temperature: float = 1.0,
    share_prefix: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities [G, T] of ``completions`` after ``prompt``, and their mask."""
    device = next(model.parameters()).device
    comp, comp_mask = pad_right(completions, pad_id)
    comp, comp_mask = comp.to(device), comp_mask.to(device)
    g, t = comp.shape
    p_ids = torch.tensor([prompt], dtype=torch.long, device=device)  # [1, Lp]
    lp = p_ids.shape[1]
    if share_prefix:
        out = model(input_ids=p_ids, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        cache.batch_repeat_interleave(g)
        first = out.logits[:, -1:].expand(g, 1, -1)  # [G, 1, V] predicts each completion's first token
        if t > 1:
            attn = torch.cat([torch.ones(g, lp, dtype=torch.long, device=device), comp_mask[:, :-1].long()], 1)
            pos = torch.arange(lp, lp + t - 1, device=device).unsqueeze(0).expand(g, -1)
            rest = model(
                input_ids=comp[:, :-1], attention_mask=attn, position_ids=pos, past_key_values=cache, use_cache=True
            ).logits  # [G, T-1, V]
            logits = torch.cat([first, rest], dim=1)
        else:
            logits = first
    else:
        ids = torch.cat([p_ids.expand(g, -1), comp], dim=1)  # [G, Lp+T]
        attn = torch.cat([torch.ones(g, lp, dtype=torch.long, device=device), comp_mask.long()], 1)
        logits = model(input_ids=ids, attention_mask=attn, logits_to_keep=t + 1).logits[:, :-1]  # [G, T, V]
    return token_logprobs(logits, comp, temperature), comp_mask
