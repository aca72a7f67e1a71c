"""Log-probabilities of completions under the policy, for one prompt group.

With ``share_prefix`` the group's prompt runs once, its key/value cache is repeated for
the G completions, and autograd sums the G completions' gradients into that one prompt
pass: the same gradient as G concatenated sequences at a fraction of the prompt's
arithmetic (tests/test_forward.py checks equality against the plain path).

Under gradient checkpointing transformers drops the cache inside every checkpointed
layer (a replayed layer would write it twice), which would break the shared prefix. So
when checkpointing is active the two passes use caches that are safe to replay: the
prompt pass records each layer's keys/values once (its replay returns them again without
writing), and the completion pass reads the repeated prompt keys/values without writing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def token_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float, allowed: torch.Tensor | None = None,
    entropy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """log π(target) from [n, T, V] logits at the sampling temperature. -> [n, T].

    ``allowed`` ([n, T, V] bool, from :func:`fgrpo.format.constrained.allowed_masks`): the
    policy is the one rollouts sampled from under a decoding constraint, the softmax over the
    allowed tokens only; without it, the unconstrained model's softmax. ``entropy``: also
    the per-token entropy [n, T] of that (masked) distribution."""
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    logits = logits.float()
    if allowed is not None:
        logits = logits.masked_fill(~allowed[:, : logits.shape[1]].to(logits.device), float("-inf"))
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if not entropy:
        return logp
    with torch.no_grad():  # a diagnostic: -sum p log p, zero where p is 0
        ent = -(logp_all.exp() * logp_all.masked_fill(~torch.isfinite(logp_all), 0.0)).sum(-1)
    return logp, ent


def completion_logprobs(
    model: Any,
    prompt: list[int],
    completions: list[list[int]],
    pad_id: int,
    temperature: float = 1.0,
    share_prefix: bool = True,
    allowed: torch.Tensor | None = None,
    entropy: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities [G, T] of ``completions`` after ``prompt``, and their mask.
    ``allowed``: the constrained policy's token masks (:func:`token_logprobs`); ``entropy``: a
    list the per-token entropy [G, T] is appended to (a diagnostic, no gradient)."""
    device = next(model.parameters()).device
    comp, comp_mask = pad_right(completions, pad_id)
    comp, comp_mask = comp.to(device), comp_mask.to(device)
    g, t = comp.shape
    p_ids = torch.tensor([prompt], dtype=torch.long, device=device)  # [1, Lp]
    lp = p_ids.shape[1]
    if share_prefix:
        layers = _checkpointed_layers(model)
        if layers:
            with _cache_replay_allowed(layers):
                logits = _shared_prefix_checkpointed(model, p_ids, comp, comp_mask)
                return _logprobs(logits, comp, comp_mask, temperature, allowed, entropy)
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
    return _logprobs(logits, comp, comp_mask, temperature, allowed, entropy)


def _logprobs(
    logits: torch.Tensor, comp: torch.Tensor, comp_mask: torch.Tensor, temperature: float,
    allowed: torch.Tensor | None, entropy: list[torch.Tensor] | None,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    if entropy is None:
        return token_logprobs(logits, comp, temperature, allowed), comp_mask  # type: ignore[return-value]
    logp, ent = token_logprobs(logits, comp, temperature, allowed, entropy=True)
    entropy.append(ent)
    return logp, comp_mask


# ------------------------------------------------------------ under gradient checkpointing


def _checkpointed_layers(model: Any) -> list[Any]:
    """Decoder layers that would checkpoint their forward now (training mode, checkpointing on)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [
        m for m in model.modules()
        if isinstance(m, GradientCheckpointingLayer) and m.gradient_checkpointing and m.training
    ]


@contextmanager
def _cache_replay_allowed(layers: list[Any]) -> Iterator[None]:
    """Let checkpointed layers keep the cache: ours is safe to replay (transformers' flag
    for layers that only read it). Set per instance and removed afterwards."""
    for m in layers:
        m._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for m in layers:
            m.__dict__.pop("_can_checkpoint_with_cache", None)


def _replay_safe_cache(model: Any, make_layer: Callable[[int], Any]) -> Any:
    from transformers.cache_utils import DynamicCache, DynamicLayer

    cache = DynamicCache(config=model.config)
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        raise NotImplementedError(
            "gradient_checkpointing with share_prompt_prefix supports full-attention models only "
            f"(this one's cache layers: {sorted({type(x).__name__ for x in cache.layers})}); "
            "set share_prompt_prefix=false"
        )
    cache.layers = [make_layer(i) for i in range(len(cache.layers))]
    return cache


def _shared_prefix_checkpointed(model: Any, p_ids: torch.Tensor, comp: torch.Tensor, comp_mask: torch.Tensor) -> torch.Tensor:
    """[G, T, V] logits of the completions (the shared-prefix path under checkpointing)."""
    from transformers.cache_utils import DynamicLayer

    class RecordOnce(DynamicLayer):
        """Prompt pass: store this layer's keys/values on the first call; a checkpoint
        replay (the layer's forward run again in backward) gets its own keys/values back,
        exactly what the first call attended over, and writes nothing."""

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            if self.is_initialized:
                return key_states, value_states
            return super().update(key_states, value_states)

    class ReadOnlyPrefix(DynamicLayer):
        """Completion pass: attend over [prompt; new] without storing the new keys/values,
        so a replay sees the same prefix as the first call."""

        def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
            super().__init__()
            self.lazy_initialization(keys, values)
            self.keys, self.values = keys, values

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)

    device = p_ids.device
    g, t = comp.shape
    lp = p_ids.shape[1]
    prompt_cache = _replay_safe_cache(model, lambda i: RecordOnce())
    out = model(input_ids=p_ids, past_key_values=prompt_cache, use_cache=True, logits_to_keep=1)
    first = out.logits[:, -1:].expand(g, 1, -1)  # [G, 1, V]
    if t == 1:
        return first
    recorded = prompt_cache.layers
    comp_cache = _replay_safe_cache(
        model,
        lambda i: ReadOnlyPrefix(recorded[i].keys.repeat_interleave(g, dim=0), recorded[i].values.repeat_interleave(g, dim=0)),
    )
    attn = torch.cat([torch.ones(g, lp, dtype=torch.long, device=device), comp_mask[:, :-1].long()], 1)
    pos = torch.arange(lp, lp + t - 1, device=device).unsqueeze(0).expand(g, -1)
    rest = model(
        input_ids=comp[:, :-1], attention_mask=attn, position_ids=pos, past_key_values=comp_cache, use_cache=True
    ).logits  # [G, T-1, V]
    return torch.cat([first, rest], dim=1)
