"""The learning-rate schedule every fgrpo training loop uses (linear warm-up, then cosine
decay) and the optimizer they build (:func:`adamw`)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def warmup_cosine(warmup_steps: int, total_steps: int, decay: bool = True) -> Callable[[int], float]:
    """Factor of the peak learning rate at optimizer step ``step`` (for ``LambdaLR``): linear
    warm-up over ``warmup_steps``, then a cosine from 1 to 0 at ``total_steps`` (``decay=False``:
    1 after the warm-up). The warm-up starts at 1 / (warmup_steps + 1), not 0, so that the
    first step already moves the weights."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if not decay:
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def adamw(params: list[torch.nn.Parameter], lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999),
          fused: bool = True) -> torch.optim.AdamW:
    """AdamW, with torch's fused kernel (one pass over each parameter's state per step) where
    it exists for every parameter's device and dtype. Why: the default loop on CPU runs about
    ten whole-tensor operations per parameter, each a pass over memory; on SmolLM2-135M that
    was 1.4 s of a 10 s RL step on the reference CPU (docs/performance.md). Same update up to
    fp32 rounding. ``fused=False`` (the sharded engines, which wrap the optimizer) keeps the loop."""
    ok = fused and bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float16, torch.bfloat16) for p in params
    )
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=True if ok else None)
