"""Hidden dropout for Llama-family models while training.

Llama's config has only ``attention_dropout``. SASRec's authors, and our tuning of
SASRec/GRU4Rec on ML-100K (docs/baselines.md), regularize the hidden states as well: dropout
on the embeddings and on every attention and MLP output. On the tiny item-token Llama this
is the difference between overfitting by 1,200 steps and still improving at 3,000
(docs/results.md). Forward hooks add it without changing the model class, so the saved
folder stays a plain Hugging Face Llama. The hooks act only in ``train()`` mode, so
evaluation, greedy decoding and rollouts never see them. No library offers this for HF
Llama, hence the few lines here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

# module-name suffixes whose outputs get dropout: the token embeddings and, in every decoder
# layer, the attention and MLP outputs before they join the residual stream
_TARGETS = ("embed_tokens", ".self_attn", ".mlp")


def dropout_targets(model: torch.nn.Module) -> list[str]:
    """Names of the modules :func:`hidden_dropout` hooks (also through a PEFT wrapper)."""
    return [name for name, _ in model.named_modules() if name.endswith(_TARGETS)]


@contextmanager
def hidden_dropout(model: torch.nn.Module, p: float) -> Iterator[int]:
    """Within the block, dropout of rate ``p`` on the embedding, attention and MLP outputs of
    ``model`` while it is in train mode; yields the number of hooked modules (0 when p == 0).
    The hooks are removed on exit, whatever happens."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"key 'hidden_dropout' must be in [0, 1), got {p}")
    if p == 0.0:
        yield 0
        return
    names = set(dropout_targets(model))
    if not names:
        raise ValueError("key 'hidden_dropout': the model has no embed_tokens / self_attn / mlp modules (a Llama-family model is needed)")

    def hook(module: torch.nn.Module, _inputs: Any, output: Any) -> Any:
        if not module.training:
            return output
        if isinstance(output, tuple):  # attention returns (hidden, weights, ...)
            return (torch.nn.functional.dropout(output[0], p, True), *output[1:])
        return torch.nn.functional.dropout(output, p, True)

    handles = [m.register_forward_hook(hook) for name, m in model.named_modules() if name in names]
    try:
        yield len(handles)
    finally:
        for h in handles:
            h.remove()
