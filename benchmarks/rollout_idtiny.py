"""Rollout cost of the id-tiny model at the id-tiny comparison's settings.

8 prompts x G = 8, constrained (the item-token state machine), temperature 1, at most 28
new tokens, one seeded generator per prompt (as ``fgrpo train`` draws them). Times
``fgrpo.rollout.engine.generate`` (min and median of ``--repeats`` calls, after one
warm-up), in wall-clock and in this process's CPU time (``time.process_time``: on a shared
machine the wall clock also counts the time other processes hold the core), and, with
``--profile``, prints the cProfile of one call.

Usage: PYTHONPATH=src .venv/bin/python benchmarks/rollout_idtiny.py [--model FOLDER] [--data FOLDER]
(defaults: runs/idtiny/sft/model and runs/idtiny/data, written by scripts/main.sh)
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import time
from pathlib import Path

import torch

from fgrpo.data.schema import read_split
from fgrpo.format.constrained import decoding_constraint
from fgrpo.format.prompts import encode_prompt
from fgrpo.models.loading import load_trained
from fgrpo.rollout.engine import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="runs/idtiny/sft/model")
    ap.add_argument("--data", default="runs/idtiny/data")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=28)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="print the cProfile of one call")
    ap.add_argument("--out", default=None, help="JSON with the numbers")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok = load_trained(args.model)
    examples = read_split(Path(args.data) / "train.jsonl")[: args.prompts]
    prompts = [encode_prompt(tok, ex, 10, 5) for ex in examples]

    def once() -> tuple[float, float, int]:
        gens = [torch.Generator().manual_seed(1000 + i) for i in range(len(prompts))]
        constraint = decoding_constraint(tok, examples, 10, 5)
        t, c = time.perf_counter(), time.process_time()
        rolls = generate(model, tok, prompts, args.group_size, args.max_new_tokens, 1.0, 1.0, gens, constraint=constraint)
        return time.perf_counter() - t, time.process_time() - c, rolls.generated_tokens

    once()  # warm-up
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        once()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    times, cpu, tokens = zip(*(once() for _ in range(args.repeats)), strict=True)
    n = len(prompts) * args.group_size
    result = {
        "rollouts": n,
        "generated_tokens": tokens[0],
        "seconds_min": min(times),
        "seconds_median": statistics.median(times),
        "cpu_seconds_min": min(cpu),
        "ms_per_rollout_min": min(times) / n * 1e3,
        "cpu_ms_per_rollout_min": min(cpu) / n * 1e3,
    }
    print(
        f"id-tiny rollout, {len(prompts)} prompts x G {args.group_size}, constrained, {tokens[0]} tokens: "
        f"wall {min(times) * 1e3:.1f} ms min ({statistics.median(times) * 1e3:.1f} median), "
        f"CPU {min(cpu) * 1e3:.1f} ms min, of {args.repeats}; {result['cpu_ms_per_rollout_min']:.2f} CPU ms per rollout"
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
