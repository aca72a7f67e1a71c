"""Step throughput: fgrpo's trainer against TRL's ``GRPOTrainer``, one run, same work.

Both frameworks train the same model (same weights, fp32, same LoRA/full setting) on the
same prompts in the same order, one prompt per optimizer step with G sampled completions
(temperature 1, top-p 1, at most ``--max-new-tokens`` tokens), the same reward (slate
recall + NDCG@5 of the parsed completion), beta = 0, one pass per rollout batch (mu = 1),
the Dr. GRPO loss normalizer, the same learning rate and AdamW betas. Each framework runs
in its own subprocess so that peak resident memory is measured separately.

Usage (see benchmarks/README.md)::

    .venv/bin/python benchmarks/step_throughput.py --quick
    .venv/bin/python benchmarks/step_throughput.py --model builtin:tiny-llama --quick
    .venv/bin/python benchmarks/step_throughput.py --sweep --skip-trl --skip-fgrpo

Per step it reports wall-clock seconds, rollout (generation) seconds and tokens/s, training
tokens/s, and model-FLOPs utilization against a matmul peak measured first:

    FLOPs = 6 * N * training_tokens + 2 * N * (prefill_tokens + generated_tokens)
    MFU   = FLOPs / step_seconds / peak_matmul_FLOP_per_s
    training MFU = c * N * training_tokens / training_seconds / peak   (c = 6; 4 with LoRA,
                   whose backward skips the base weights' gradients)

"training seconds" is the step minus generation: forward, backward, optimizer step and the
(cheap) parsing and rewards, so the training MFU slightly understates the forward+backward's.

with N the base model's parameter count (tied embeddings counted once).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TINY = "builtin:tiny-llama"
SMOLLM2 = "builtin:smollm2-135m-instruct"
DEFAULT_DATA = "runs/main_llm/data"  # the SmolLM2 pipeline's data (scripts/main_llm.sh)


# ------------------------------------------------------------------ shared helpers


def set_threads(threads: int) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)


def matmul_peak(threads: int, n: int = 2048, repeats: int = 8, packed: bool = False) -> dict[str, float]:
    """fp32 GFLOP/s of an n x n matrix product on this machine (best of ``repeats``), the
    best of MKL's ``a @ b`` (torch's default) and oneDNN's linear: on AMD CPUs MKL's sgemm runs
    AVX2 code and reaches about half of what oneDNN (and fgrpo's linears, fgrpo.kernels.onednn)
    does, so MFU is read against the faster of the two. ``packed``: oneDNN's weight reordered
    to its blocked layout first (``mkldnn._reorder_linear_weight``, as the static decoder's
    cached weights are; benchmarks/decode_profile.py's floor), a few % faster than plain."""
    import torch

    set_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)

    def best(f: Any) -> tuple[float, float]:
        for _ in range(2):  # warm-up: thread pool, allocator
            f()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        return min(times), statistics.median(times)

    flop = 2.0 * n**3
    mkl, mkl_median = best(lambda: a @ b)
    onednn = onednn_median = float("inf")
    try:
        bt = b.t().contiguous()
        if packed:
            bt = torch.ops.mkldnn._reorder_linear_weight(bt, n)
        onednn, onednn_median = best(lambda: torch.ops.mkldnn._linear_pointwise(a, bt, None, "none", [], ""))
    except (RuntimeError, AttributeError, NotImplementedError):
        pass
    return {
        "size": n,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "peak_gflops": flop / min(mkl, onednn) / 1e9,
        "median_gflops": flop / min(mkl_median, onednn_median) / 1e9,
        "mkl_peak_gflops": flop / mkl / 1e9,
        "onednn_peak_gflops": flop / onednn / 1e9 if onednn < float("inf") else 0.0,
    }


def peak_rss_gb() -> float:
    """This process's peak resident set size (Linux: ru_maxrss is in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * (1 if sys.platform != "darwin" else 1 / 1024) / 1024**2


def current_rss_gb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1024**3


def base_param_count(model: Any) -> int:
    """Parameters of the base model (LoRA adapters excluded, tied weights counted once)."""
    return sum(p.numel() for name, p in model.named_parameters() if "lora_" not in name)


def train_config(spec: dict[str, Any], output_dir: str) -> Any:
    """The fgrpo TrainConfig both frameworks derive their data and settings from."""
    from fgrpo.config.commands import TrainConfig

    toy = spec["data"] == "toy"
    cfg = TrainConfig(
        model=spec["model"],
        dataset=spec["data"],
        output_dir=output_dir,
        seed=spec["seed"],
        max_steps=spec["total_steps"],
        group_size=spec["group_size"],
        prompts_per_step=1,
        max_new_tokens=spec["max_new_tokens"],
        temperature=1.0,
        top_p=1.0,
        learning_rate=spec["learning_rate"],
        use_lora=spec["lora"],
        lora_r=spec["lora_r"],
        lora_alpha=spec["lora_alpha"],
        lora_dropout=0.0,
        kl_beta=0.0,
        ppo_epochs=1,
        loss_aggregation="dr_grpo",
        scale_by_std=False,
        advantage_estimator=spec["estimator"],
        sft_warmup_steps=0,
        eval_every=0,
        tensorboard=False,
        torch_threads=spec["threads"],
        toy_num_train=max(256, spec["total_steps"] + 1),
        toy_pool_size=spec["pool_size"] if (toy and spec["pool_size"]) else 8,
    )
    cfg.validate()
    return cfg


def truncate_pool(ex: Any, size: int) -> Any:
    """The example with its pool cut to ``size`` candidates, relevant ones always kept."""
    from fgrpo.data.schema import Example

    if ex.num_candidates <= size:
        return ex
    relevant = {c.id for c in ex.candidates if ex.relevance.get(c.id, 0) > 0}
    n_other = max(0, size - len(relevant))
    keep, others = [], 0
    for c in ex.candidates:
        if c.id in relevant:
            keep.append(c)
        elif others < n_other:
            keep.append(c)
            others += 1
    return Example(ex.id, ex.query, keep, dict(ex.relevance), ex.task, dict(ex.meta))


def step_record(
    *, step_s: float, rollout_s: float, generated: int, prompt_tokens: int, completion_len_mean: float,
    completion_len_max: int, prefill_tokens: int, training_tokens: int, group_size: int,
) -> dict[str, Any]:
    """One step's numbers; the same definitions for both frameworks (see benchmarks/README.md)."""
    train_s = max(step_s - rollout_s, 1e-9)
    sample_tokens = group_size * prompt_tokens + generated  # G*(P + C) over the group
    return {
        "step_s": step_s,
        "rollout_s": rollout_s,
        "train_s": step_s - rollout_s,
        "generated_tokens": generated,
        "rollout_tokens_per_s": generated / max(rollout_s, 1e-9),
        "prompt_tokens": prompt_tokens,
        "completion_len_mean": completion_len_mean,
        "completion_len_max": completion_len_max,
        "prefill_tokens": prefill_tokens,
        "training_tokens": training_tokens,
        "training_tokens_per_s": training_tokens / train_s,
        "sample_tokens": sample_tokens,
        "sample_tokens_per_s": sample_tokens / max(step_s, 1e-9),
    }


# ------------------------------------------------------------------ workers (one per subprocess)


def worker_fgrpo(spec: dict[str, Any]) -> dict[str, Any]:
    """fgrpo's real code path: TrainConfig -> setup(cfg) -> train_step(run, step)."""
    set_threads(spec["threads"])

    from fgrpo.commands.train import setup
    from fgrpo.trainer.train import batch_indices, encode, train_step

    with tempfile.TemporaryDirectory(prefix="bench-fgrpo-") as tmp:
        cfg = train_config(spec, tmp)
        t0 = time.perf_counter()
        run = setup(cfg)
        setup_s = time.perf_counter() - t0
        if spec["pool_size"] and spec["data"] != "toy":
            run.train = [truncate_pool(ex, spec["pool_size"]) for ex in run.train]
        model = run.model.get_base_model() if cfg.use_lora else run.model
        n_params = base_param_count(model)
        n_trainable = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
        rss_setup = current_rss_gb()
        steps = []
        for step in range(spec["total_steps"]):
            m = train_step(run, step)
            index = batch_indices(step, 1, len(run.train), cfg.seed)[0]
            ex = run.train[index]
            p = len(encode(run, ex))
            rollout_s = m["rollout/seconds"]
            generated = round(m["rollout/tokens_per_s"] * rollout_s)
            # tokens_per_s = (P + G * C_max) / (step - rollout): the shared-prefix forward's positions
            training_tokens = round(m["tokens_per_s"] * (m["step_time_s"] - rollout_s))
            g = cfg.group_size
            rec = step_record(
                step_s=m["step_time_s"], rollout_s=rollout_s, generated=generated, prompt_tokens=p,
                completion_len_mean=m["completion_len"], completion_len_max=(training_tokens - p) // g,
                prefill_tokens=p, training_tokens=training_tokens, group_size=g,
            )
            for key, name in (("rollout/prefill_seconds", "prefill_s"), ("time/rewards_s", "rewards_s"),
                              ("time/forward_backward_s", "forward_backward_s"), ("time/optimizer_s", "optimizer_s")):
                if key in m:  # the per-component split (docs/performance.md's first table)
                    rec[name] = m[key]
            if "prefill_s" in rec:
                rec["decode_s"] = rollout_s - rec["prefill_s"]
            rec["warmup"] = step < spec["warmup_steps"]
            rec["example_index"] = index
            rec["reward_mean"] = m["reward/joint"]
            steps.append(rec)
    return worker_result("fgrpo", spec, n_params, n_trainable, setup_s, rss_setup, steps)


def worker_result(
    framework: str, spec: dict[str, Any], n_params: int, n_trainable: int, setup_s: float, rss_setup: float,
    steps: list[dict[str, Any]],
) -> dict[str, Any]:
    """What a worker process reports, the same fields for both frameworks."""
    import torch

    return {
        "framework": framework,
        "n_params": n_params,
        "n_trainable": n_trainable,
        "setup_s": setup_s,
        "rss_after_setup_gb": rss_setup,
        "peak_rss_gb": peak_rss_gb(),
        "torch_threads": torch.get_num_threads(),
        "group_size": spec["group_size"],
        "pool_size": spec["pool_size"],
        "steps": steps,
    }


def worker_trl(spec: dict[str, Any]) -> dict[str, Any]:
    """TRL's GRPOTrainer with the same model, prompts (same order), reward and settings."""
    set_threads(spec["threads"])
    import torch
    import trl
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from fgrpo import parse_completion
    from fgrpo.algorithm.rewards import phase_rewards
    from fgrpo.commands.inputs import train_valid
    from fgrpo.format.prompts import encode_prompt, render_prompt
    from fgrpo.models.loading import load_model, load_tokenizer
    from fgrpo.trainer.train import batch_indices

    with tempfile.TemporaryDirectory(prefix="bench-trl-") as tmp:
        cfg = train_config(spec, tmp)
        torch.manual_seed(cfg.seed)
        t0 = time.perf_counter()
        train, _ = train_valid(cfg)
        if spec["pool_size"] and spec["data"] != "toy":
            train = [truncate_pool(ex, spec["pool_size"]) for ex in train]
        tok = load_tokenizer(cfg.model)
        model = load_model(cfg.model, cfg.dtype, cfg.seed, cfg.tiny_hidden_size, cfg.tiny_num_layers)
        n_params = base_param_count(model)

        # the prompts fgrpo's steps 0..total-1 use, in that order; TRL's sampler then walks
        # them in order (shuffle_dataset=False), each repeated G times
        order = [batch_indices(s, 1, len(train), cfg.seed)[0] for s in range(spec["total_steps"])]
        order.append(order[-1])  # one spare row: the sampler never runs dry at the last step
        prompts = [render_prompt(tok, train[i], cfg.max_slate, cfg.max_rank) for i in order]
        # TRL tokenizes a plain-string prompt with tokenizer(text=...) (no chat template):
        # check that it yields exactly fgrpo's prompt ids
        for i, text in zip(order[:3], prompts[:3], strict=False):
            if tok(text=[text])["input_ids"][0] != encode_prompt(tok, train[i], cfg.max_slate, cfg.max_rank):
                raise RuntimeError("TRL would tokenize the prompt differently from fgrpo")
        dataset = Dataset.from_dict({"prompt": prompts, "example_index": order})
        seen: list[tuple[int, float]] = []  # (example index, mean reward) per reward call

        def slate_recall_plus_ndcg(prompts: list[str], completions: list[str], example_index: list[int], **kwargs: Any) -> list[float]:
            exs = [train[i] for i in example_index]
            parsed = [parse_completion(c, ex.num_candidates, cfg.max_slate, cfg.max_rank) for c, ex in zip(completions, exs, strict=True)]
            r = phase_rewards(parsed, [ex.grades() for ex in exs], cfg.slate_reward, cfg.rank_k, cfg.invalid_penalty)
            joint = r.slate + cfg.rank_weight * r.rank
            seen.append((example_index[0], float(joint.mean())))
            return joint.tolist()

        g = cfg.group_size
        args = GRPOConfig(
            output_dir=tmp,
            use_cpu=True,
            report_to=[],
            logging_strategy="no",
            save_strategy="no",
            eval_strategy="no",
            disable_tqdm=True,
            seed=cfg.seed,
            max_steps=spec["total_steps"],
            per_device_train_batch_size=g,
            gradient_accumulation_steps=1,
            num_generations=g,
            generation_batch_size=g,
            shuffle_dataset=False,
            dataloader_num_workers=0,
            max_completion_length=cfg.max_new_tokens,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            use_vllm=False,
            beta=0.0,
            num_iterations=1,
            epsilon=cfg.clip_eps_low,
            epsilon_high=cfg.clip_eps_high,
            loss_type="dr_grpo",
            scale_rewards="none",
            learning_rate=cfg.learning_rate,
            lr_scheduler_type="constant",
            warmup_steps=0,
            optim="adamw_torch",
            adam_beta1=cfg.adam_beta1,
            adam_beta2=cfg.adam_beta2,
            weight_decay=cfg.weight_decay,
            max_grad_norm=cfg.max_grad_norm,
            bf16=False,  # TRL's default is bf16=True: ~300x slower matmuls on this CPU
            fp16=False,
            # TRL defaults gradient_checkpointing=True; transformers 5 renamed it (the old name
            # still works but warns), and fgrpo does not recompute activations
            activation_checkpointing=False,
            log_completions=False,
        )
        peft_config = None
        if cfg.use_lora:
            from peft import LoraConfig

            peft_config = LoraConfig(
                r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                target_modules=cfg.lora_target_modules, task_type="CAUSAL_LM",
            )

        class StepTimer(TrainerCallback):
            def __init__(self) -> None:
                self.t0 = 0.0
                self.seconds: list[float] = []

            def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                self.t0 = time.perf_counter()

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                self.seconds.append(time.perf_counter() - self.t0)

        timer = StepTimer()
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[slate_recall_plus_ndcg],
            args=args,
            train_dataset=dataset,
            processing_class=tok,
            callbacks=[timer],
            peft_config=peft_config,
        )
        n_trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        if getattr(trainer.model, "is_activation_checkpointing", False):
            raise RuntimeError("TRL turned activation checkpointing on; fgrpo runs without it")
        setup_s = time.perf_counter() - t0
        set_threads(spec["threads"])

        # generation time: TRL's own timer (profiling_context) only reports to wandb/mlflow/
        # trackio, so wrap the generation call (left-pad + model.generate + EOS masking)
        gens: list[dict[str, Any]] = []
        generate_single_turn = trainer._generate_single_turn

        def timed_generate(prompt_ids: list[list[int]], *a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            out = generate_single_turn(prompt_ids, *a, **kw)
            gens.append({
                "seconds": time.perf_counter() - t,
                "prompt_lens": [len(p) for p in prompt_ids],
                "completion_lens": [len(c) for c in out[0]],
            })
            return out

        trainer._generate_single_turn = timed_generate

        shapes: list[tuple[int, int, int]] = []  # (rows, padded prompt, padded completion) per loss forward
        compute_loss = trainer._compute_loss

        def recorded_loss(model: Any, inputs: dict[str, Any]) -> Any:
            rows, p_pad = inputs["prompt_ids"].shape
            shapes.append((rows, p_pad, inputs["completion_ids"].shape[1]))
            return compute_loss(model, inputs)

        trainer._compute_loss = recorded_loss
        rss_setup = current_rss_gb()
        trainer.train()

        if not (len(timer.seconds) == len(gens) == len(shapes) == len(seen) == spec["total_steps"]):
            raise RuntimeError(
                f"expected {spec['total_steps']} steps, timed {len(timer.seconds)}, generations {len(gens)}, "
                f"reward calls {len(seen)}, loss forwards {len(shapes)}"
            )
        steps = []
        for k, (sec, gen, (rows, p_pad, c_pad), (index, reward)) in enumerate(zip(timer.seconds, gens, shapes, seen, strict=True)):
            rec = step_record(
                step_s=sec, rollout_s=gen["seconds"], generated=sum(gen["completion_lens"]),
                prompt_tokens=gen["prompt_lens"][0],
                completion_len_mean=sum(gen["completion_lens"]) / len(gen["completion_lens"]),
                completion_len_max=max(gen["completion_lens"]),
                prefill_tokens=sum(gen["prompt_lens"]), training_tokens=rows * (p_pad + c_pad), group_size=g,
            )
            rec["warmup"] = k < spec["warmup_steps"]
            rec["example_index"] = index
            rec["reward_mean"] = reward
            steps.append(rec)
    return {**worker_result("trl", spec, n_params, n_trainable, setup_s, rss_setup, steps), "trl_version": trl.__version__}


# ------------------------------------------------------------------ SFT: fgrpo's supervised_steps vs TRL's SFTTrainer


def sft_batches(spec: dict[str, Any], train: list[Any], tok: Any) -> list[list[tuple[str, str, Any]]]:
    """Per step, (prompt text, completion text, example) of the batch ``supervised_steps``
    draws with this seed: the same examples in the same order and the same targets."""
    import numpy as np

    from fgrpo.format.completion import render_completion
    from fgrpo.format.prompts import render_prompt
    from fgrpo.trainer.sft import sft_target

    rng = np.random.default_rng(spec["seed"])
    order, cursor, out = rng.permutation(len(train)), 0, []
    for _ in range(spec["total_steps"]):
        batch = []
        for _ in range(spec["sft_batch_size"]):
            if cursor == len(order):
                order, cursor = rng.permutation(len(train)), 0
            ex = train[order[cursor]]
            cursor += 1
            slate, ranking = sft_target(ex, 10, 5, rng)
            batch.append((render_prompt(tok, ex, 10, 5), render_completion(slate, ranking), ex))
        out.append(batch)
    return out


def sft_model(spec: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
    from fgrpo.data.schema import read_split
    from fgrpo.models.loading import load_model, load_tokenizer

    train = read_split(Path(spec["data"]) / "train.jsonl")
    if spec["pool_size"]:
        train = [truncate_pool(ex, spec["pool_size"]) for ex in train]
    return load_model(spec["model"]), load_tokenizer(spec["model"]), train


def sft_result(framework: str, n_params: int, steps: list[tuple[float, int, int]], spec: dict[str, Any]) -> dict[str, Any]:
    """(seconds, tokens, supervised tokens) per step -> the reported numbers (warm-up steps excluded)."""
    timed = steps[spec["warmup_steps"] :] or steps
    seconds, tokens = sum(s for s, _, _ in timed), sum(t for _, t, _ in timed)
    return {
        "framework": framework,
        "n_params": n_params,
        "steps": [{"step_s": s, "tokens": t, "supervised_tokens": c} for s, t, c in steps],
        "sft_peak_rss_gb": peak_rss_gb(),
        "sft_tokens_per_s": tokens / max(seconds, 1e-9),
        "sft_step_s_mean": seconds / len(timed),
    }


def worker_sft_fgrpo(spec: dict[str, Any]) -> dict[str, Any]:
    """fgrpo's ``supervised_steps`` (what ``fgrpo sft`` runs), LoRA or full."""
    set_threads(spec["threads"])
    from fgrpo.kernels.onednn import use_onednn_linears
    from fgrpo.models.loading import add_lora
    from fgrpo.trainer import sft

    model, tok, train = sft_model(spec)
    n_params = base_param_count(model)
    if spec["sft_checkpointing"]:  # as `fgrpo sft gradient_checkpointing=true` does: before LoRA
        model.gradient_checkpointing_enable()
    if spec["lora"]:
        model = add_lora(model, spec["lora_r"], spec["lora_alpha"], 0.0, "all-linear")
    use_onednn_linears(model)  # as `fgrpo sft` does by default (onednn_linear=true), after LoRA
    pending: list[tuple[int, int]] = []  # (tokens, supervised tokens) per forward of the current step
    collate = sft.collate

    def counted(batch: Any, pad_id: int) -> dict[str, Any]:
        out = collate(batch, pad_id)
        pending.append((int(out["attention_mask"].sum()), int((out["labels"] != -100).sum())))
        return out

    sft.collate = counted
    steps: list[tuple[float, int, int]] = []

    def log(row: dict[str, float]) -> None:
        steps.append((row["step_time_s"], sum(t for t, _ in pending), sum(k for _, k in pending)))
        pending.clear()

    sft.supervised_steps(
        model, tok, train, spec["total_steps"], spec["sft_batch_size"], spec["learning_rate"], spec["seed"],
        slate_size=10, max_slate=10, max_rank=5, log=log, log_every=1, micro_batch_size=spec["sft_micro_batch_size"],
    )  # fmt: skip
    return sft_result("fgrpo", n_params, steps, spec)


def worker_sft_trl(spec: dict[str, Any]) -> dict[str, Any]:
    """TRL's SFTTrainer on the same prompt/completion pairs (completion-only loss, EOS
    appended by TRL), same batch size, learning rate, LoRA, fp32, no activation checkpointing."""
    set_threads(spec["threads"])
    import trl
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    model, tok, train = sft_model(spec)
    n_params = base_param_count(model)
    rows = [pair for batch in sft_batches(spec, train, tok) for pair in batch]
    dataset = Dataset.from_dict({"prompt": [p for p, _, _ in rows], "completion": [c for _, c, _ in rows]})
    args = SFTConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-sft-"), use_cpu=True, report_to=[], logging_strategy="no",
        save_strategy="no", eval_strategy="no", disable_tqdm=True, seed=spec["seed"], max_steps=spec["total_steps"],
        per_device_train_batch_size=spec["sft_batch_size"], gradient_accumulation_steps=1, shuffle_dataset=False,
        dataloader_num_workers=0, learning_rate=spec["learning_rate"], lr_scheduler_type="constant", warmup_steps=0,
        optim="adamw_torch", weight_decay=0.0, max_grad_norm=1.0, bf16=False, fp16=False,
        activation_checkpointing=False, completion_only_loss=True, max_length=None, packing=False,
    )  # fmt: skip
    peft_config = None
    if spec["lora"]:
        from peft import LoraConfig

        peft_config = LoraConfig(r=spec["lora_r"], lora_alpha=spec["lora_alpha"], lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.t0, self.seconds = 0.0, []

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.seconds.append(time.perf_counter() - self.t0)

    timer = StepTimer()
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok, callbacks=[timer], peft_config=peft_config)
    if getattr(trainer.model, "is_activation_checkpointing", False):
        raise RuntimeError("TRL turned activation checkpointing on; fgrpo runs without it")
    counts: list[tuple[int, int]] = []
    compute_loss = trainer.compute_loss

    def recorded(model: Any, inputs: dict[str, Any], *a: Any, **kw: Any) -> Any:
        counts.append((int(inputs["attention_mask"].sum()), int((inputs["labels"] != -100).sum())))
        return compute_loss(model, inputs, *a, **kw)

    trainer.compute_loss = recorded
    set_threads(spec["threads"])
    trainer.train()
    steps = [(t, c, k) for t, (c, k) in zip(timer.seconds, counts, strict=True)]
    return {**sft_result("trl", n_params, steps, spec), "trl_version": trl.__version__}


WORKERS = {"fgrpo": worker_fgrpo, "trl": worker_trl, "sft_fgrpo": worker_sft_fgrpo, "sft_trl": worker_sft_trl}


# ------------------------------------------------------------------ orchestration


def run_worker(kind: str, spec: dict[str, Any], verbose: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        spec_path, out_path, log_path = Path(tmp, "spec.json"), Path(tmp, "out.json"), Path(tmp, "log.txt")
        spec_path.write_text(json.dumps(spec))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--spec", str(spec_path), "--worker-out", str(out_path)]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        if spec["threads"] > 0:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(spec["threads"])
        with open(log_path, "w") as log:
            proc = subprocess.run(cmd, env=env, stdout=None if verbose else log, stderr=None if verbose else subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            tail = "\n".join(log_path.read_text().splitlines()[-60:]) if not verbose else ""
            raise SystemExit(f"{kind} worker failed (exit {proc.returncode}):\n{tail}")
        return json.loads(out_path.read_text())


def add_flops(result: dict[str, Any], peak_gflops: float) -> None:
    n = result["n_params"]
    train_c = 4 if result["n_trainable"] < n else 6  # LoRA: no base-weight gradients
    for s in result["steps"]:
        s["flops"] = 6 * n * s["training_tokens"] + 2 * n * (s["prefill_tokens"] + s["generated_tokens"])
        s["mfu"] = s["flops"] / max(s["step_s"], 1e-9) / (peak_gflops * 1e9)
        s["train_flops"] = train_c * n * s["training_tokens"]
        s["train_mfu"] = s["train_flops"] / max(s["train_s"], 1e-9) / (peak_gflops * 1e9)


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    timed = [s for s in result["steps"] if not s["warmup"]] or result["steps"]

    def mean(key: str) -> float:
        return statistics.fmean(s[key] for s in timed)

    total_s = sum(s["step_s"] for s in timed)
    components = {f"{k}_mean": mean(k) for k in ("prefill_s", "decode_s", "rewards_s", "forward_backward_s", "optimizer_s")
                  if all(k in s for s in timed)}  # fgrpo's per-component split
    if "forward_backward_s_mean" in components:  # the forward + backward alone, at the same peak
        components["forward_backward_mfu"] = (sum(s["train_flops"] for s in timed)
                                              / max(sum(s["forward_backward_s"] for s in timed), 1e-9) / result["_peak_flops"])
    return {
        **components,
        "timed_steps": len(timed),
        "step_s_mean": mean("step_s"),
        "step_s_median": statistics.median(s["step_s"] for s in timed),
        "rollout_s_mean": mean("rollout_s"),
        "train_s_mean": mean("train_s"),
        "rollout_tokens_per_s": sum(s["generated_tokens"] for s in timed) / max(sum(s["rollout_s"] for s in timed), 1e-9),
        "training_tokens_per_s": sum(s["training_tokens"] for s in timed) / max(sum(s["train_s"] for s in timed), 1e-9),
        "sample_tokens_per_s": sum(s["sample_tokens"] for s in timed) / max(total_s, 1e-9),
        "completion_len_mean": mean("completion_len_mean"),
        "prompt_tokens_mean": mean("prompt_tokens"),
        "mfu": sum(s["flops"] for s in timed) / max(total_s, 1e-9) / result["_peak_flops"],
        "train_mfu": sum(s["train_flops"] for s in timed) / max(sum(s["train_s"] for s in timed), 1e-9) / result["_peak_flops"],
        "peak_rss_gb": result["peak_rss_gb"],
    }


def print_steps(results: list[dict[str, Any]]) -> None:
    head = f"{'framework':<9} {'step':>5} {'step s':>8} {'gen s':>7} {'gen tok':>7} {'gen tok/s':>9} {'train tok':>9} {'train tok/s':>11} {'prompt':>6} {'compl':>6} {'MFU %':>6}"
    print(head)
    print("-" * len(head))
    for r in results:
        for k, s in enumerate(r["steps"]):
            label = "warm-up" if s["warmup"] else str(k + 1 - sum(x["warmup"] for x in r["steps"]))
            print(
                f"{r['framework']:<9} {label:>5} {s['step_s']:>8.2f} {s['rollout_s']:>7.2f} {s['generated_tokens']:>7d} "
                f"{s['rollout_tokens_per_s']:>9.1f} {s['training_tokens']:>9d} {s['training_tokens_per_s']:>11.1f} "
                f"{s['prompt_tokens']:>6d} {s['completion_len_mean']:>6.1f} {100 * s['mfu']:>6.2f}"
            )


def print_summary(summaries: dict[str, dict[str, Any]]) -> None:
    rows = [
        ("step seconds (mean)", "step_s_mean", 1, ".2f"),
        ("  rollout seconds", "rollout_s_mean", 1, ".2f"),
        ("  rest (training) seconds", "train_s_mean", 1, ".2f"),
        ("rollout tokens/s", "rollout_tokens_per_s", 1, ".1f"),
        ("training tokens/s", "training_tokens_per_s", 1, ".1f"),
        ("sample tokens/s G(P+C)/step", "sample_tokens_per_s", 1, ".1f"),
        ("prompt tokens P", "prompt_tokens_mean", 1, ".1f"),
        ("completion length C (mean)", "completion_len_mean", 1, ".1f"),
        ("MFU %", "mfu", 100, ".2f"),
        ("training MFU %", "train_mfu", 100, ".2f"),
        ("peak RSS GB", "peak_rss_gb", 1, ".2f"),
    ]
    names = list(summaries)
    print(f"\n{'summary (timed steps)':<30}" + "".join(f"{n:>12}" for n in names))
    for label, key, scale, fmt in rows:
        print(f"{label:<30}" + "".join(f"{scale * summaries[n][key]:>12{fmt}}" for n in names))


def comparison(s: dict[str, dict[str, Any]]) -> dict[str, Any]:
    f, t = s["fgrpo"], s["trl"]
    return {
        "step_time_ratio_fgrpo_over_trl": f["step_s_mean"] / t["step_s_mean"],
        "rollout_time_ratio_fgrpo_over_trl": f["rollout_s_mean"] / t["rollout_s_mean"],
        "train_time_ratio_fgrpo_over_trl": f["train_s_mean"] / t["train_s_mean"],
        "speedup_trl_over_fgrpo": t["step_s_mean"] / f["step_s_mean"],
        "peak_rss_ratio_fgrpo_over_trl": f["peak_rss_gb"] / t["peak_rss_gb"],
    }


SWEEP_HEAD = (f"{'G':>3} {'pool':>5} {'prompt P':>8} {'compl C':>7} {'G*C':>6} {'G*P':>7} {'step s':>8} "
              f"{'gen s':>7} {'train s':>8} {'ms/(G*C)':>9} {'RSS GB':>7}")


def print_sweep_point(point: dict[str, Any], suffix: str = "") -> None:
    print(
        f"{point['group_size']:>3} {point['pool_size']:>5} {point['prompt_tokens_mean']:>8.1f} {point['completion_len_mean']:>7.1f} "
        f"{point['g_times_c']:>6.0f} {point['g_times_p']:>7.0f} {point['step_s_mean']:>8.2f} {point['rollout_s_mean']:>7.2f} "
        f"{point['train_s_mean']:>8.2f} {1000 * point['step_s_mean'] / max(point['g_times_c'], 1):>9.1f} {point['peak_rss_gb']:>7.2f}{suffix}"
    )


def fit_sweep(points: list[dict[str, Any]]) -> dict[str, float] | None:
    """Least squares over the timed steps: step_s ~ a + b*(G*C) + c*P + d*(G*P). fgrpo computes
    the prompt once per group, so d should be ~0 and b carry the growth with G."""
    import numpy as np

    rows = [(p["group_size"], s) for p in points if "fit" not in p for s in p["steps"] if not s["warmup"]]
    if len({(p["group_size"], p["pool_size"]) for p in points if "fit" not in p}) < 4:
        return None
    x = np.array([[1.0, g * s["completion_len_mean"], s["prompt_tokens"], g * s["prompt_tokens"]] for g, s in rows])
    y = np.array([s["step_s"] for _, s in rows])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    r2 = 1 - float(((y - x @ coef) ** 2).sum()) / max(float(((y - y.mean()) ** 2).sum()), 1e-12)
    fit = {"intercept_s": coef[0], "s_per_1k_GxC": 1000 * coef[1], "s_per_1k_P": 1000 * coef[2], "s_per_1k_GxP": 1000 * coef[3], "r2": r2}
    print(
        f"fit step_s ~ a + b*(G*C) + c*P + d*(G*P) over {len(rows)} timed steps: a={fit['intercept_s']:.2f} s, "
        f"b={fit['s_per_1k_GxC']:.2f} s/1k, c={fit['s_per_1k_P']:.2f} s/1k, d={fit['s_per_1k_GxP']:.2f} s/1k, R^2={r2:.3f}"
    )
    return {k: float(v) for k, v in fit.items()}


def sweep(base: dict[str, Any], groups: list[int], pools: list[int], verbose: bool, peak: float) -> list[dict[str, Any]]:
    points = []
    print(f"\nsweep (fgrpo only): G in {groups}, pool size in {pools}, max_new_tokens={base['max_new_tokens']}")
    print(SWEEP_HEAD)
    print("-" * len(SWEEP_HEAD))
    for pool in pools:
        for g in groups:
            res = run_worker("fgrpo", {**base, "group_size": g, "pool_size": pool}, verbose)
            res["_peak_flops"] = peak * 1e9
            add_flops(res, peak)
            summ = summarize(res)
            point = {"group_size": g, "pool_size": pool, "g_times_c": g * summ["completion_len_mean"],
                     "g_times_p": g * summ["prompt_tokens_mean"], **summ, "steps": res["steps"]}
            points.append(point)
            print_sweep_point(point)
    fit = fit_sweep(points)
    if fit:
        points.append({"fit": fit})
    return points


def refit_sweeps(paths: list[Path]) -> None:
    """Merge the sweeps of saved reports, a later file's (G, pool) point replacing an earlier
    one (a point re-run because the machine was busy), then reprint the table and the fit."""
    merged: dict[tuple[int, int], dict[str, Any]] = {}
    for path in paths:
        for point in json.loads(path.read_text()).get("sweep", []):
            if "fit" not in point:
                merged[(point["group_size"], point["pool_size"])] = {**point, "_from": path.name}
    print(SWEEP_HEAD + "  from")
    print("-" * len(SWEEP_HEAD))
    points = [merged[k] for k in sorted(merged, key=lambda k: (k[1], k[0]))]
    for point in points:
        print_sweep_point(point, f"  {point['_from']}")
    fit_sweep(points)


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "fgrpo"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def run_sft(spec: dict[str, Any], args: argparse.Namespace, report: dict[str, Any]) -> None:
    """``--sft``: both SFT workers, each in its own process; the JSON's ``sft`` holds
    ``sft_peak_rss_gb`` and ``sft_tokens_per_s`` per framework."""
    report["settings"] = spec
    sides = {}
    for kind, skip in (("fgrpo", args.skip_fgrpo), ("trl", args.skip_trl)):
        if not skip:
            print(f"running SFT, {kind} ...", flush=True)
            sides[kind] = run_worker(f"sft_{kind}", spec, args.verbose)
    print(f"\nSFT, batch {spec['sft_batch_size']} (fgrpo micro-batch {spec['sft_micro_batch_size']}, checkpointing {spec['sft_checkpointing']}), lora={spec['lora']}, {spec['warmup_steps']} warm-up + "
          f"{spec['total_steps'] - spec['warmup_steps']} timed steps")
    print(f"{'':24}" + "".join(f"{k:>12}" for k in sides))
    for key in ("sft_peak_rss_gb", "sft_tokens_per_s", "sft_step_s_mean"):
        print(f"{key:24}" + "".join(f"{sides[k][key]:>12.2f}" for k in sides))
    report["sft"] = sides
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float))
    print(f"\nwrote {out}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=SMOLLM2, help=f"fgrpo model name or folder (default {SMOLLM2}; {TINY} for a tiny random Llama)")
    ap.add_argument("--data", default=None, help=f"folder with train.jsonl from `fgrpo prepare`, or 'toy' (default: {DEFAULT_DATA}; 'toy' for {TINY})")
    ap.add_argument("--group-size", type=int, default=None, help="G, completions per prompt (default 8; 4 with --quick)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="longest completion (default 48; 32 with --quick)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per framework (default 5; 2 with --quick)")
    ap.add_argument("--warmup-steps", type=int, default=1, help="untimed steps before the timed ones")
    ap.add_argument("--learning-rate", type=float, default=1e-6)
    ap.add_argument("--lora", action="store_true", help="train LoRA adapters (r=16, alpha=32, all-linear) instead of all weights")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-alpha", type=int, default=32)
    ap.add_argument("--estimator", choices=["fgrpo", "grpo"], default="fgrpo", help="fgrpo's advantage estimator (same cost)")
    ap.add_argument("--pool-size", type=int, default=None, help="cut every pool to this many candidates (relevant ones kept)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in every process (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="1 warm-up + 2 timed steps each, G=4, max_new_tokens=32")
    ap.add_argument("--skip-trl", action="store_true")
    ap.add_argument("--skip-fgrpo", action="store_true")
    ap.add_argument("--sweep", action="store_true", help="also time fgrpo for G x pool size (see --sweep-groups/--sweep-pools)")
    ap.add_argument("--sweep-groups", default="4,8,16")
    ap.add_argument("--sweep-pools", default="10,20")
    ap.add_argument("--sft", action="store_true", help="time supervised fine-tuning instead: fgrpo's supervised_steps vs TRL's SFTTrainer (tokens/s, peak RSS)")
    ap.add_argument("--sft-batch-size", type=int, default=4, help="--sft: examples per optimizer step")
    ap.add_argument("--sft-micro-batch-size", type=int, default=1, help="--sft: fgrpo's micro_batch_size (0: the whole batch in one forward)")
    ap.add_argument("--sft-checkpointing", action="store_true", help="--sft: fgrpo recomputes activations in backward (gradient_checkpointing=true)")
    ap.add_argument("--out", default="runs/bench/step_throughput.json", help="JSON with every number")
    ap.add_argument("--verbose", action="store_true", help="show the workers' output")
    ap.add_argument("--summarize", metavar="JSON", help="reprint the summary (training MFU included) of a saved --out file; runs nothing")
    ap.add_argument("--refit-sweep", metavar="JSON", nargs="+", help="merge the sweeps of saved --out files (later files replace the same G x pool point) and reprint the table and fit; runs nothing")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    quick = args.quick
    args.group_size = args.group_size or (4 if quick else 8)
    args.max_new_tokens = args.max_new_tokens or (32 if quick else 48)
    args.steps = args.steps or (2 if quick else 5)
    if args.data is None:
        args.data = "toy" if args.model == TINY else DEFAULT_DATA
    return args


def resummarize(path: Path) -> None:
    """Recompute the per-step FLOPs and the summaries of a saved report with the current
    definitions (e.g. the training MFU, added after some reports were written)."""
    report = json.loads(path.read_text())
    peak = report["matmul"]["peak_gflops"]
    summaries = {}
    for name, res in report["results"].items():
        res["_peak_flops"] = peak * 1e9
        add_flops(res, peak)
        summaries[name] = summarize(res)
    print(f"{path}: fp32 matmul peak {peak:.1f} GFLOP/s")
    print_summary(summaries)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.summarize:
        resummarize(Path(args.summarize))
        return
    if args.refit_sweep:
        refit_sweeps([Path(p) for p in args.refit_sweep])
        return
    if args.worker:
        spec = json.loads(Path(args.spec).read_text())
        result = WORKERS[args.worker](spec)
        Path(args.worker_out).write_text(json.dumps(result))
        return
    if args.data != "toy" and not (Path(args.data) / "train.jsonl").is_file():
        raise SystemExit(f"{args.data}/train.jsonl not found: run `fgrpo prepare` first, or pass --data")

    spec = {
        "model": args.model, "data": args.data, "group_size": args.group_size, "max_new_tokens": args.max_new_tokens,
        "warmup_steps": args.warmup_steps, "total_steps": args.warmup_steps + args.steps, "learning_rate": args.learning_rate,
        "lora": args.lora, "lora_r": args.lora_r, "lora_alpha": args.lora_alpha, "estimator": args.estimator,
        "pool_size": args.pool_size, "threads": args.threads, "seed": args.seed,
    }
    print(f"model={args.model} data={args.data} G={args.group_size} max_new_tokens={args.max_new_tokens} "
          f"lora={args.lora} lr={args.learning_rate} warm-up={args.warmup_steps} timed steps={args.steps} threads={args.threads or 'default'}")
    peak = matmul_peak(args.threads)
    print(f"fp32 matmul peak: {peak['peak_gflops']:.1f} GFLOP/s (median {peak['median_gflops']:.1f}; "
          f"{peak['size']}x{peak['size']}, {peak['threads']} threads)")
    report: dict[str, Any] = {"settings": spec, "matmul": peak, "versions": versions(), "results": {}}
    if args.sft:
        run_sft({**spec, "sft_batch_size": args.sft_batch_size, "sft_micro_batch_size": args.sft_micro_batch_size, "sft_checkpointing": args.sft_checkpointing}, args, report)
        return

    results = []
    for kind, skip in (("fgrpo", args.skip_fgrpo), ("trl", args.skip_trl)):
        if skip:
            continue
        print(f"running {kind} ...", flush=True)
        res = run_worker(kind, spec, args.verbose)
        res["_peak_flops"] = peak["peak_gflops"] * 1e9
        add_flops(res, peak["peak_gflops"])
        results.append(res)
    summaries = {}
    if results:
        print()
        print_steps(results)
        summaries = {r["framework"]: summarize(r) for r in results}
        print_summary(summaries)
        for r in results:
            r.pop("_peak_flops")
            report["results"][r["framework"]] = {**r, "summary": summaries[r["framework"]]}
    if "fgrpo" in summaries and "trl" in summaries:
        comp = comparison(summaries)
        fg, tr = ([s["example_index"] for s in report["results"][k]["steps"]] for k in ("fgrpo", "trl"))
        comp["same_prompts_each_step"] = fg == tr
        if fg != tr:
            print(f"WARNING: the frameworks saw different prompts: fgrpo {fg}, TRL {tr}")
        report["comparison"] = comp
        print(f"\nstep time fgrpo/TRL = {comp['step_time_ratio_fgrpo_over_trl']:.3f} "
              f"(TRL takes {comp['speedup_trl_over_fgrpo']:.2f}x as long); rollout {comp['rollout_time_ratio_fgrpo_over_trl']:.3f}, "
              f"rest {comp['train_time_ratio_fgrpo_over_trl']:.3f}; peak RSS {comp['peak_rss_ratio_fgrpo_over_trl']:.2f}; "
              f"same prompts each step: {comp['same_prompts_each_step']}")
    if args.sweep:
        groups = [int(x) for x in args.sweep_groups.split(",") if x]
        pools = [int(x) for x in args.sweep_pools.split(",") if x]
        report["sweep"] = sweep({**spec, "pool_size": None}, groups, pools, args.verbose, peak["peak_gflops"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
