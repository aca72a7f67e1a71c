"""Decode cost on this CPU: one fp32 `linear` of SmolLM2's MLP shape at several row counts,
and one decode step of SmolLM2-135M over a ~550-token cache at 8/16/32 rows.

Usage: .venv/bin/python benchmarks/decode_profile.py [MODEL_FOLDER]
(default: runs/main_llm/sft/model, written by scripts/main_llm.sh; numbers in docs/performance.md)
"""

from __future__ import annotations

import sys
import time

import torch

from fgrpo.models.loading import load_model


def main() -> None:
    folder = sys.argv[1] if len(sys.argv) > 1 else "runs/main_llm/sft/model"
    weight = torch.randn(1536, 576)
    for rows in (1, 8, 32, 128):
        x = torch.randn(rows, 576)
        t = time.perf_counter()
        for _ in range(200):
            torch.nn.functional.linear(x, weight)
        dt = (time.perf_counter() - t) / 200
        print(f"linear 576->1536, {rows:>3} rows: {dt * 1e3:.2f} ms ({weight.numel() * 4 / dt / 1e9:.1f} GB/s of weights)")
    model = load_model(folder).eval()
    prompt = torch.randint(0, 1000, (1, 550))
    for rows in (8, 16, 32):
        with torch.inference_mode():
            cache = model(prompt, use_cache=True).past_key_values
            cache.batch_repeat_interleave(rows)
            token = torch.zeros(rows, 1, dtype=torch.long)
            model(token, past_key_values=cache, use_cache=True)  # warm-up
            t = time.perf_counter()
            for _ in range(10):
                model(token, past_key_values=cache, use_cache=True)
        dt = (time.perf_counter() - t) / 10
        print(f"decode step, {rows:>2} rows: {dt:.3f} s ({dt / rows:.4f} s per generated token)")


if __name__ == "__main__":
    main()
