"""How much the CPU kernels' instruction set (and the thread count) change
SmolLM2-135M's logits. Runs one forward of a seeded 4 x 300-token batch in subprocesses
under different environments and prints the largest absolute logit difference.

    python scripts/isa_logits.py       # native vs AVX2-pinned (scripts/reproducible_env.sh), 1 vs 2 threads
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

FORWARD = """
import sys, torch
from fgrpo.models.smollm2 import ensure_smollm2
from transformers import AutoModelForCausalLM
torch.set_num_threads(int(sys.argv[2]))
m = AutoModelForCausalLM.from_pretrained(ensure_smollm2(), dtype=torch.float32).eval()
ids = torch.randint(0, 40000, (4, 300), generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    torch.save(m(input_ids=ids).logits, sys.argv[1])
print(torch.backends.cpu.get_cpu_capability())
"""
PIN = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def logits(out: Path, threads: int, pinned: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k not in PIN}
    env.update(PIN if pinned else {})
    run = subprocess.run([sys.executable, "-c", FORWARD, str(out), str(threads)], env=env, capture_output=True, text=True, check=True)
    return run.stdout.split()[-1]


def main() -> None:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        cases = {"native, 2 threads": (2, False), "native, 1 thread": (1, False), "AVX2, 2 threads": (2, True), "AVX2, 2 threads again": (2, True)}
        got = {}
        for name, (threads, pinned) in cases.items():
            path = Path(tmp) / f"{len(got)}.pt"
            isa = logits(path, threads, pinned)
            got[name] = torch.load(path)
            print(f"{name}: kernels {isa}")
        base = got["native, 2 threads"]
        for name in ("native, 1 thread", "AVX2, 2 threads"):
            print(f"max |logit difference| native 2 threads vs {name}: {(base - got[name]).abs().max().item():.2e}")
        print("AVX2 run twice bit-identical:", torch.equal(got["AVX2, 2 threads"], got["AVX2, 2 threads again"]))


if __name__ == "__main__":
    main()
