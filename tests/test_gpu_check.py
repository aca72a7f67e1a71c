"""benchmarks/gpu_check.py: its Qwen3-4B sizes are Qwen3-4B's, and its tiny CPU run works."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_config_is_qwen3_4b() -> None:
    """Built on the meta device (no memory): 4,022,468,096 parameters, by hand: 36 layers x
    (q 2560x4096 + k, v 2560x1024 + o 4096x2560 + MLP 3x2560x9728 + norms 2x2560 + q/k norms
    2x128) + tied embedding 151936x2560 + final norm 2560."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    gc = load()
    with torch.device("meta"):
        model = Qwen3ForCausalLM(Qwen3Config(**gc.QWEN3_4B))
    per_layer = 2560 * 4096 + 2 * 2560 * 1024 + 4096 * 2560 + 3 * 2560 * 9728 + 2 * 2560 + 2 * 128
    assert sum(p.numel() for p in model.parameters()) == 36 * per_layer + 151936 * 2560 + 2560 == 4_022_468_096


def test_tiny_run_on_cpu() -> None:
    torch.set_num_threads(1)
    summary = load().main(["--tiny", "--steps", "1", "--warmup-steps", "1"])
    assert summary["device"] == "cpu" and summary["group_size"] == 8
    assert summary["step_s"] > 0 and summary["rollout_tokens_per_s"] > 0 and summary["train_mfu"] > 0
