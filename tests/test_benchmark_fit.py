"""The step-throughput benchmark's sweep fit recovers known costs (synthetic steps)."""

import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("step_throughput", Path(__file__).parents[1] / "benchmarks" / "step_throughput.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def _point(g: int, pool: int, prompt: float, completions: list[float], cost) -> dict:
    steps = [{"warmup": True, "step_s": 999.0, "completion_len_mean": 1.0, "prompt_tokens": prompt}]
    steps += [{"warmup": False, "step_s": cost(g, c, prompt), "completion_len_mean": c, "prompt_tokens": prompt} for c in completions]
    return {"group_size": g, "pool_size": pool, "steps": steps}


def test_fit_sweep_recovers_a_linear_cost_and_ignores_warmup():
    def cost(g, c, p):  # seconds: 5 + 20 s per 1k G*C + 10 s per 1k P + 2 s per 1k G*P
        return 5 + 0.020 * g * c + 0.010 * p + 0.002 * g * p

    points = [_point(g, pool, 100.0 + 20 * pool, [40.0 + g, 47.0 - pool / 5], cost) for g in (4, 8, 16) for pool in (5, 10, 20)]
    fit = bench.fit_sweep(points)
    assert fit["intercept_s"] == pytest.approx(5, abs=1e-6)
    assert fit["s_per_1k_GxC"] == pytest.approx(20, abs=1e-6)
    assert fit["s_per_1k_P"] == pytest.approx(10, abs=1e-6)
    assert fit["s_per_1k_GxP"] == pytest.approx(2, abs=1e-6)
    assert fit["r2"] == pytest.approx(1.0)


def test_fit_sweep_needs_four_settings():
    points = [_point(g, 10, 300.0, [40.0, 41.0], lambda g, c, p: 1.0) for g in (4, 8, 16)]
    assert bench.fit_sweep(points) is None
