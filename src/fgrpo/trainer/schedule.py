"""The learning-rate schedule every fgrpo training loop uses: linear warm-up, then cosine decay."""

from __future__ import annotations

import math
from collections.abc import Callable


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
