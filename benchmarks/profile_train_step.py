"""torch's profiler over one fgrpo RL step (SmolLM2-135M, G = 8, full fine-tuning, one ML-100K
prompt, at most 48 new tokens): the operator table behind docs/performance.md's "what stands in
the way" of the training MFU. One untimed step first (allocations), then the profiled one.

Usage: PYTHONPATH=src .venv/bin/python benchmarks/profile_train_step.py [--data /work/runs/ml100k] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from fgrpo.commands.train import setup
from fgrpo.config.commands import TrainConfig
from fgrpo.trainer import train as trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="/work/runs/ml100k")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=30, help="operators shown")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(model="builtin:smollm2-135m-instruct", dataset=args.data, output_dir=tmp, seed=0, max_steps=10,
                          group_size=8, prompts_per_step=1, max_new_tokens=48, temperature=1.0, top_p=1.0,
                          learning_rate=1e-6, kl_beta=0.0, ppo_epochs=1, loss_aggregation="dr_grpo", scale_by_std=False,
                          sft_warmup_steps=0, eval_every=0, tensorboard=False, torch_threads=args.threads,
                          save_every=100, log_every=1)
        run = setup(cfg)
        trainer.train_step(run, 0)
        with torch.profiler.profile() as prof:
            m = trainer.train_step(run, 1)
        print({k: round(v, 3) for k, v in m.items() if k.startswith(("time/", "rollout/")) or k == "step_time_s"})
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
