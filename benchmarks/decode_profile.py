"""One decode step of a Llama-family model (SmolLM2-135M by default) against this CPU's floor.

Measures, in one process and with ``--threads`` torch threads:

* the floor's two rates: memory read bandwidth (a sum over a 512 MiB tensor) and the fp32
  matmul peak (2048^3, the best of MKL's ``torch.mm`` and oneDNN with a prepacked weight:
  on AMD CPUs MKL's sgemm runs on AVX2 and reaches about half of what the core does);
* the floor of one decode step of ``--rows`` rows over a ``--prompt-tokens`` prompt shared
  by the rows: max(bytes read / bandwidth, FLOPs / peak), the bytes being every projection
  weight and the head once plus the prompt's keys and values once, the FLOPs 2 x projection
  parameters x rows plus the attention's 4 x rows x heads x head_dim x keys per layer;
* the step through transformers' forward (DynamicCache repeated to the rows, as
  ``generate(static_cache=False)`` decodes) and through :class:`fgrpo.rollout.static_llama.LlamaDecoder`
  (what ``generate`` uses), each the mean over ``--steps`` steps after one warm-up;
* the prefill of the prompt, both ways, for docs/performance.md's per-component table.

The last line is ``decode <rows> rows: <ms> ms/step, floor <ms> ms, ratio <x>`` for the
static decoder. ``--profile`` prints torch's operator table for both paths.

Usage: PYTHONPATH=src .venv/bin/python benchmarks/decode_profile.py [--model NAME] [--rows 8] [--threads 1] [--out FILE]
(numbers in docs/performance.md)
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path
from typing import Any

import torch
from step_throughput import matmul_peak  # benchmarks/ is this script's sys.path[0]

from fgrpo.models.loading import load_model
from fgrpo.rollout.static_llama import LlamaDecoder, supports


def _best(f: Any, repeats: int) -> float:
    f()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def _forward_step(model: Any, cache: Any, token: torch.Tensor) -> Any:
    return model(token[:, None], past_key_values=cache, use_cache=True)


def rates(threads: int) -> dict[str, float]:
    """Read bandwidth (GB/s) and fp32 matmul peak (GFLOP/s, MKL's and oneDNN's: the one
    measurement of benchmarks/step_throughput.py)."""
    big = torch.ones(128 * 1024 * 1024)
    bandwidth = big.numel() * 4 / _best(big.sum, 5) / 1e9
    peak = matmul_peak(threads, repeats=5, packed=True)
    return {"read_gb_s": bandwidth, "mkl_gflops": peak["mkl_peak_gflops"], "onednn_gflops": peak["onednn_peak_gflops"],
            "peak_gflops": peak["peak_gflops"]}


def floor_ms(model: Any, rows: int, prompt: int, r: dict[str, float]) -> dict[str, float]:
    cfg = model.config
    linear = sum(m.weight.numel() for n, m in model.named_modules() if isinstance(m, torch.nn.Linear))
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * prompt  # prompt's keys+values, once
    flops = 2 * linear * rows + 4 * rows * cfg.num_attention_heads * head_dim * prompt * cfg.num_hidden_layers
    read_ms = (linear + kv) * 4 / (r["read_gb_s"] * 1e9) * 1e3
    flop_ms = flops / (r["peak_gflops"] * 1e9) * 1e3
    return {"bytes_ms": read_ms, "flops_ms": flop_ms, "floor_ms": max(read_ms, flop_ms),
            "weight_mb": linear * 4 / 1e6, "gflop": flops / 1e9}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="builtin:smollm2-135m-instruct")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--prompt-tokens", type=int, default=550)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--profile", action="store_true", help="print torch's operator table for both paths")
    ap.add_argument("--out", default=None, help="JSON with the numbers")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    r = rates(args.threads)
    print(f"read bandwidth {r['read_gb_s']:.1f} GB/s; fp32 matmul peak {r['peak_gflops']:.0f} GFLOP/s "
          f"(MKL {r['mkl_gflops']:.0f}, oneDNN {r['onednn_gflops']:.0f}); {args.threads} threads")
    model = load_model(args.model).eval()
    if not supports(model):
        raise SystemExit(f"{args.model}: not a model the static decoder reads")
    rows, steps = args.rows, args.steps
    prompt = torch.randint(10, 1000, (1, args.prompt_tokens), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(prompt)
    token = torch.randint(10, 1000, (rows,), generator=torch.Generator().manual_seed(1))
    result: dict[str, Any] = {"rows": rows, "prompt_tokens": args.prompt_tokens, "threads": args.threads, **r}
    result.update(floor_ms(model, rows, args.prompt_tokens, r))
    with torch.inference_mode():
        result["prefill_forward_ms"] = _best(lambda: model(prompt, attention_mask=mask, use_cache=True, logits_to_keep=1), 2) * 1e3
        result["prefill_ms"] = _best(lambda: LlamaDecoder(model, prompt, mask, rows, steps + 2), 2) * 1e3
        for path in ("forward", "static"):
            if path == "static":
                dec = LlamaDecoder(model, prompt, mask, rows, steps + 2)
                step = dec.step
            else:
                cache = model(prompt, attention_mask=mask, use_cache=True, logits_to_keep=1).past_key_values
                cache.batch_repeat_interleave(rows)
                step = functools.partial(_forward_step, model, cache)
            step(token)  # warm-up (the static path packs its weights here)
            t = time.perf_counter()
            for _ in range(steps):
                step(token)
            result[f"{path}_ms"] = (time.perf_counter() - t) / steps * 1e3
            if args.profile:
                with torch.profiler.profile() as prof:
                    step(token)
                print(f"--- {path}\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
    result["ratio"] = result["static_ms"] / result["floor_ms"]
    print(f"prefill of {args.prompt_tokens} tokens: {result['prefill_ms']:.0f} ms (forward {result['prefill_forward_ms']:.0f} ms); floor of a decode step: "
          f"{result['weight_mb']:.0f} MB read in {result['bytes_ms']:.1f} ms, {result['gflop']:.2f} GFLOP in {result['flops_ms']:.1f} ms")
    print(f"decode {rows} rows through the forward (DynamicCache): {result['forward_ms']:.1f} ms/step, "
          f"ratio {result['forward_ms'] / result['floor_ms']:.2f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"decode {rows} rows: {result['static_ms']:.1f} ms/step, floor {result['floor_ms']:.1f} ms, ratio {result['ratio']:.2f}")


if __name__ == "__main__":
    main()
