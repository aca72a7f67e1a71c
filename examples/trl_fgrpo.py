"""F-GRPO through TRL's GRPOTrainer (fgrpo.integrations.trl).

CPU, the builtin tiny model on the toy task (a short supervised warm-up first, so that the
format is written and the phase rewards differ within a group):

    python examples/trl_fgrpo.py --model builtin:tiny-llama --max-steps 2

GPU, a Hub model on a prepared dataset folder, vLLM generating in the training process:

    accelerate launch examples/trl_fgrpo.py --model Qwen/Qwen3-4B --dataset runs/ml100k \\
        --use-vllm --max-steps 200 --bf16 --learning-rate 1e-6

Everything else (vLLM server mode, PEFT, DeepSpeed / FSDP through ``accelerate launch
--config_file``, ``push_to_hub``) is TRL's: pass the matching GRPOConfig keys with --set.
"""

from __future__ import annotations

import argparse
import json
import time

from datasets import Dataset

from fgrpo.data.splits import read_splits
from fgrpo.data.toy import make_toy_examples
from fgrpo.integrations.trl import FGRPOConfig, FGRPOTrainer, trl_rows


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="F-GRPO with TRL's GRPOTrainer")
    ap.add_argument("--model", default="builtin:tiny-llama", help="builtin:tiny-llama, or a Hub name / local folder")
    ap.add_argument("--dataset", default="toy", help="toy, or an fgrpo dataset folder (train.jsonl)")
    ap.add_argument("--max-steps", type=int, default=2)
    ap.add_argument("--advantage-estimator", default="fgrpo", choices=["fgrpo", "grpo"])
    ap.add_argument("--group-size", type=int, default=8, help="G (paper: 8)")
    ap.add_argument("--prompts-per-step", type=int, default=2)
    ap.add_argument("--max-completion-length", type=int, default=64)
    ap.add_argument("--learning-rate", type=float, default=1e-4)
    ap.add_argument("--sft-warmup-steps", type=int, default=150, help="tiny model only: supervised warm-up steps")
    ap.add_argument("--use-vllm", action="store_true", help="generate with vLLM (GPU; TRL's colocate mode)")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--output-dir", default="runs/trl_fgrpo")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="more GRPOConfig keys, e.g. vllm_mode='\"server\"'")
    return ap.parse_args()


def main() -> None:
    a = parse_args()
    t0 = time.perf_counter()
    tiny = a.model == "builtin:tiny-llama"
    if tiny:
        from fgrpo.models.loading import load_model, load_tokenizer
        from fgrpo.trainer.sft import supervised_steps

        tok, model = load_tokenizer(a.model), load_model(a.model)
    else:
        from transformers import AutoTokenizer

        tok, model = AutoTokenizer.from_pretrained(a.model), a.model  # TRL loads the model
    if a.dataset == "toy":
        examples = make_toy_examples(256, pool_size=5, max_relevant=2, seed=0)
    else:
        examples = read_splits(a.dataset, ["train"], skip_invalid=False)["train"]
    if tiny and a.sft_warmup_steps:
        supervised_steps(model, tok, examples, a.sft_warmup_steps, 16, 1e-3, seed=0, slate_size=3, max_slate=10, max_rank=5)
    extra = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in a.set)}
    args = FGRPOConfig(
        output_dir=a.output_dir, max_steps=a.max_steps, advantage_estimator=a.advantage_estimator,
        num_generations=a.group_size, per_device_train_batch_size=a.group_size * a.prompts_per_step,
        generation_batch_size=a.group_size * a.prompts_per_step, max_completion_length=a.max_completion_length,
        learning_rate=a.learning_rate, loss_type="dr_grpo", beta=0.0, logging_steps=1, save_strategy="no",
        report_to=[], use_vllm=a.use_vllm, bf16=a.bf16, use_cpu=tiny, activation_checkpointing=not tiny, seed=0, **extra,
    )  # fmt: skip
    ds = Dataset.from_dict(trl_rows(tok, examples, args.max_slate, args.max_rank))
    trainer = FGRPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    trainer.train()
    for row in trainer.state.log_history:
        if "rewards/slate/mean" in row:
            print(f"step {row['step']}: rewards/slate/mean {row['rewards/slate/mean']:.3f}  rewards/rank/mean {row['rewards/rank/mean']:.3f}")
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
