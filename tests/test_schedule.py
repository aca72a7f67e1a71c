"""The shared learning-rate schedule, by hand."""

import math

import pytest

from fgrpo.trainer.schedule import warmup_cosine


def test_warmup_then_cosine_by_hand() -> None:
    f = warmup_cosine(warmup_steps=3, total_steps=7)
    # warm-up: (step + 1) / 4, never 0; then cos over the 4 remaining steps, 0 from step 7 on
    expected = [0.25, 0.5, 0.75, 1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4)), 0.0, 0.0]
    assert [f(s) for s in range(9)] == pytest.approx(expected)


def test_constant_after_warmup_and_no_warmup() -> None:
    assert [warmup_cosine(2, 10, decay=False)(s) for s in range(5)] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0, 1.0])
    assert warmup_cosine(0, 2)(0) == 1.0 and warmup_cosine(0, 2)(1) == pytest.approx(0.5)
    assert warmup_cosine(0, 0)(0) == 1.0  # zero steps: no division by zero
