"""Ready for a GPU: a few F-GRPO training steps of Qwen3-4B's architecture, no downloads.

Builds Qwen3-4B from its config values (below; random weights, fp32 master weights, bf16
autocast), then runs ``--steps`` steps of rollout (sampling, KV cache, G completions per
prompt) + update (fgrpo's token advantages, clipped surrogate, Dr. GRPO normalizer, AdamW)
on synthetic prompts. Random weights write no answer format, so the phase rewards and the
phase boundary are synthetic (seeded); every tensor op of the step is the real one.
Prints per step: step time, rollout tokens/s, training MFU, and the peak GPU memory.

  python benchmarks/gpu_check.py                 # one GPU, < 5 min (H100/H200 class)
  python benchmarks/gpu_check.py --tiny          # the same code with tiny sizes, on CPU (a test runs it)

Prompt length: 536 tokens, the ML-100K prompt of docs/performance.md (SmolLM2 tokenizer);
completion 64 tokens (fgrpo train's max_new_tokens); change them with --prompt-len/--completion-len.
Rollout uses transformers' ``generate`` (fgrpo's own rollout engine needs a real tokenizer
for its stop string); the update uses fgrpo's forward (shared prompt prefix) and core_algos.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from fgrpo.algorithm import core_algos
from fgrpo.format.spans import phase_masks
from fgrpo.trainer.forward import completion_logprobs

# Qwen/Qwen3-4B config.json (transformers Qwen3Config names)
QWEN3_4B = dict(
    hidden_size=2560, num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8,
    intermediate_size=9728, vocab_size=151936, head_dim=128, rope_theta=1_000_000.0,
    tie_word_embeddings=True, max_position_embeddings=40960, rms_norm_eps=1e-6,
)  # fmt: skip
TINY = dict(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
    vocab_size=512, head_dim=16, rope_theta=1_000_000.0, tie_word_embeddings=True, max_position_embeddings=512,
    rms_norm_eps=1e-6,
)  # fmt: skip
PEAK_BF16_TFLOPS = 989.0  # H100 / H200 SXM, dense bf16 (NVIDIA data sheets)


def build_model(sizes: dict[str, Any], device: torch.device, seed: int) -> Any:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(**sizes, bos_token_id=None, eos_token_id=None, pad_token_id=0)
    torch.manual_seed(seed)
    with device:  # initialize on the device: a 4B model's CPU init alone takes minutes
        model = Qwen3ForCausalLM(config)
    return model.float()


def synthetic_phases(p: int, g: int, c: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Per-phase rewards [P, G] (penalty, recall- and NDCG-like values) and slate-token counts [B]."""
    levels = torch.tensor([-0.5, 0.0, 0.2, 0.5, 0.8, 1.0])
    r_slate = levels[torch.randint(0, len(levels), (p, g), generator=gen)]
    r_rank = levels[torch.randint(0, len(levels), (p, g), generator=gen)]
    n_slate = torch.randint(1, c, (p * g,), generator=gen)
    return r_slate, r_rank, n_slate


def train_step(model: Any, opt: torch.optim.Optimizer, prompts: torch.Tensor, args: argparse.Namespace,
               gen: torch.Generator, autocast: Any) -> dict[str, float]:  # fmt: skip
    p, lp = prompts.shape
    g, c = args.group_size, args.completion_len
    sync = torch.cuda.synchronize if prompts.is_cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    # 1. rollout: G samples per prompt, fixed length (no EOS in random weights' vocabulary)
    model.eval()
    with torch.no_grad(), autocast():
        out = model.generate(
            input_ids=prompts.repeat_interleave(g, 0), attention_mask=torch.ones(p * g, lp, dtype=torch.long, device=prompts.device),
            do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=c, min_new_tokens=c, pad_token_id=0,
        )  # fmt: skip
    completions = out[:, lp:].cpu()  # [B, C]
    sync()
    t1 = time.perf_counter()
    # 2-3. rewards and advantages (synthetic phases, fgrpo's estimator)
    r_slate, r_rank, n_slate = synthetic_phases(p, g, c, gen)
    lengths = torch.full((p * g,), completions.shape[1])
    slate_mask, rank_mask = phase_masks(n_slate, lengths, completions.shape[1])  # [B, C]
    adv = core_algos.fgrpo_token_advantages(r_slate, r_rank, slate_mask, rank_mask)  # [B, C]
    normalizer = core_algos.loss_normalizer(slate_mask | rank_mask, "dr_grpo", c)
    # 4. loss, one prompt group per micro-batch (the prompt's prefix computed once)
    model.train()
    for i in range(p):
        rows = slice(i * g, (i + 1) * g)
        with autocast():
            logp, mask = completion_logprobs(model, prompts[i].tolist(), completions[rows].tolist(), pad_id=-1)
        old = logp.detach()  # on-policy: one pass, ratio 1
        token_loss, _ = core_algos.clipped_surrogate(logp.float(), old.float(), adv[rows].to(logp.device))
        core_algos.aggregate_loss(token_loss, mask, "dr_grpo", normalizer.to(logp.device)).backward()
    # 5. optimizer step
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    sync()
    t2 = time.perf_counter()
    n = sum(q.numel() for q in model.parameters())
    train_tokens = p * (lp + g * c)  # shared prefix: each prompt once, then its G completions
    return {"step_s": t2 - t0, "rollout_s": t1 - t0, "train_s": t2 - t1, "rollout_tokens": p * g * c,
            "rollout_tokens_per_s": p * g * c / (t1 - t0), "train_tokens": train_tokens,
            "train_flops": 6.0 * n * train_tokens, "n_params": n}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny sizes on CPU (the test suite's run)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 4; 2 with --tiny)")
    ap.add_argument("--warmup-steps", type=int, default=1, help="untimed first steps (CUDA kernels, allocator)")
    ap.add_argument("--prompts", type=int, default=None, help="prompts per step (default 4; 1 with --tiny)")
    ap.add_argument("--group-size", type=int, default=8, help="G (paper: 8)")
    ap.add_argument("--prompt-len", type=int, default=None, help="prompt tokens (default 536; 32 with --tiny)")
    ap.add_argument("--completion-len", type=int, default=None, help="completion tokens (default 64; 8 with --tiny)")
    ap.add_argument("--peak-tflops", type=float, default=PEAK_BF16_TFLOPS, help="the device's dense bf16 peak, for MFU")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="", help="also write the summary to this file")
    args = ap.parse_args(argv)
    tiny = args.tiny
    args.steps = args.steps or (2 if tiny else 4)
    args.prompts = args.prompts or (1 if tiny else 4)
    args.prompt_len = args.prompt_len or (32 if tiny else 536)
    args.completion_len = args.completion_len or (8 if tiny else 64)
    if not tiny and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --tiny on CPU")
    device = torch.device("cpu" if tiny else "cuda")
    sizes = TINY if tiny else QWEN3_4B
    model = build_model(sizes, device, args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=device.type == "cuda")

    def autocast() -> Any:
        return torch.autocast(device.type, dtype=torch.bfloat16)

    gen = torch.Generator().manual_seed(args.seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    steps = []
    for k in range(args.warmup_steps + args.steps):
        prompts = torch.randint(1, sizes["vocab_size"], (args.prompts, args.prompt_len), generator=gen).to(device)
        s = train_step(model, opt, prompts, args, gen, autocast)
        s["warmup"] = k < args.warmup_steps
        s["train_mfu"] = s["train_flops"] / s["train_s"] / (args.peak_tflops * 1e12)
        steps.append(s)
        print(f"step {k:>2}{' (warm-up)' if s['warmup'] else '':<10} step {s['step_s']:7.2f} s  rollout {s['rollout_s']:6.2f} s "
              f"({s['rollout_tokens_per_s']:8.1f} tok/s)  update {s['train_s']:6.2f} s  train MFU {100 * s['train_mfu']:5.1f} %", flush=True)  # fmt: skip
    timed = [s for s in steps if not s["warmup"]]
    summary = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "model": "tiny" if tiny else "Qwen3-4B architecture, random weights", "n_params": steps[0]["n_params"],
        "prompts": args.prompts, "group_size": args.group_size, "prompt_len": args.prompt_len, "completion_len": args.completion_len,
        "step_s": sum(s["step_s"] for s in timed) / len(timed),
        "rollout_tokens_per_s": sum(s["rollout_tokens"] for s in timed) / sum(s["rollout_s"] for s in timed),
        "train_mfu": sum(s["train_flops"] for s in timed) / sum(s["train_s"] for s in timed) / (args.peak_tflops * 1e12),
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
    }  # fmt: skip
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return summary


if __name__ == "__main__":
    main()
