"""The F-GRPO / GRPO training step and loop (the ``fgrpo train`` command, which sets a run
up and builds it, is :mod:`fgrpo.commands.train`).

Reads top to bottom: the run's state, then per step
rollout -> parse -> reward -> advantage -> loss -> optimizer step -> log -> checkpoint.
F-GRPO and GRPO differ in one line (the advantage estimator); everything else is shared.

Several processes (``torchrun`` / ``accelerate launch``) split each step's prompt groups;
gradients are averaged by an all-reduce after backward rather than by a DDP wrapper,
because the shared-prefix forward calls the model twice per backward, which DDP's
reducer does not allow. The loss normalizer is global, so the update equals one process
doing all groups. Under FSDP or DeepSpeed the engine owns the model and optimizer and
does the reduction; what changes then is in fgrpo/trainer/sharded.py.
"""

from __future__ import annotations

import math
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fgrpo.algorithm import core_algos
from fgrpo.algorithm.rewards import phase_rewards
from fgrpo.config.commands import TrainConfig
from fgrpo.config.progress import Progress, TimeBudget
from fgrpo.data.schema import Example
from fgrpo.format.completion import ERROR_KINDS, parse_completion
from fgrpo.format.constrained import allowed_masks, decoding_constraint
from fgrpo.format.items import candidate_labels
from fgrpo.format.prompts import encode_prompt
from fgrpo.format.spans import decode_completions, phase_masks, slate_token_counts
from fgrpo.models.answer_format import answer_format, write_answer_format
from fgrpo.rollout.engine import generate
from fgrpo.trainer.checkpoint import (
    check_finite,
    fsync_tree,
    latest_checkpoint,
    load_warmup,
    publish,
    save_checkpoint,
    save_warmup,
)
from fgrpo.trainer.forward import completion_logprobs
from fgrpo.trainer.launch import SHARDED, LaunchError
from fgrpo.trainer.metrics_log import MetricsLog, read_metrics
from fgrpo.trainer.schedule import warmup_cosine
from fgrpo.trainer.sft import supervised_steps
from fgrpo.trainer.sharded import (
    clip_grad_norm,
    full_params,
    full_state_dicts,
)


class TrainingStopped(RuntimeError):
    """Training cannot go on (repeated non-finite updates); the last checkpoint is intact."""


class TrainingInterrupted(RuntimeError):
    """A SIGINT / SIGTERM stopped the run after a checkpoint; ``exit_code`` is the shell's
    convention for that signal (130, 143), so a script can tell it from a finished run."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


# ------------------------------------------------------------------ setup


# the wall-clock keys of a step's metrics row: the rest is a function of the seed and the data
TIMING_KEYS = ("step_time_s", "tokens_per_s", "rollout/seconds", "rollout/tokens_per_s", "rollout/prefill_seconds",
               "time/rewards_s", "time/forward_backward_s", "time/optimizer_s")


def batch_indices(step: int, per_step: int, n: int, seed: int) -> list[int]:
    """Example indices of global step ``step``: epoch-wise permutations, a pure function of
    (step, seed), so a resumed run sees exactly the batches the uninterrupted run would."""
    out = []
    for j in range(step * per_step, (step + 1) * per_step):
        epoch, pos = divmod(j, n)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(n)[pos]))
    return out


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    factor = warmup_cosine(cfg.warmup_steps, cfg.max_steps, decay=cfg.lr_schedule != "constant")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class Run:
    cfg: TrainConfig
    model: Any
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train: list[Example]
    valid: list[Example]
    accelerator: Any
    log: MetricsLog | None
    start_step: int = 0
    ref_model: Any = None
    strategy: str = "single"  # from launch.check_launch; 'fsdp' / 'deepspeed': the engine owns model and optimizer
    prompt_cache: dict[str, list[int]] = field(default_factory=dict)


def warm_up(
    cfg: TrainConfig, model: Any, tokenizer: Any, train: list[Example], accelerator: Any,
    log: MetricsLog | None, warm: Path | None, relog: bool,
) -> None:
    """The SFT warm-up, or on resume its saved result (checkpoints/warmup). Without one (a
    run from before it was saved) the warm-up is run again, deterministic, logged only when
    its rows were dropped (``relog``), and saved."""
    if warm is not None:
        state = load_warmup(warm, model, accelerator.process_index)
        if state.get("sft_warmup_steps") != cfg.sft_warmup_steps:
            raise LaunchError(f"{warm} holds {state.get('sft_warmup_steps')} warm-up steps, the config asks for "
                              f"{cfg.sft_warmup_steps}; resume with the same config")
        if log:
            log.note(f"warm-up loaded from {warm}")
        return
    supervised_steps(
        model, tokenizer, train, cfg.sft_warmup_steps, cfg.sft_batch_size, cfg.sft_learning_rate,
        seed=cfg.seed, slate_size=cfg.sft_slate_size, max_slate=cfg.max_slate, max_rank=cfg.max_rank,
        log=(lambda row: log.write({"phase": "sft_warmup", **row})) if log and relog else None, desc="sft warm-up",
    )
    # saved once, so that a kill before the first RL checkpoint does not re-run the warm-up
    save_warmup(cfg.output_dir, model, tokenizer, {"sft_warmup_steps": cfg.sft_warmup_steps, "seed": cfg.seed},
                accelerator.process_index, accelerator.wait_for_everyone)


def resumed_rows(start_step: int, warmup_kept: bool) -> Any:
    """Which metrics.jsonl lines a run resumed at ``start_step`` keeps: the rows it will not
    write again. Steps past the checkpoint are re-run (a kill after a row was logged but
    before its step was saved would otherwise leave the row twice); at step 0 that includes
    the step-0 evaluation; the warm-up's rows unless its result is reused."""

    def keep(row: dict[str, Any]) -> bool:
        if "step" not in row:  # notes
            return True
        if row.get("phase") == "sft_warmup":
            return warmup_kept
        return start_step > 0 and row["step"] <= start_step

    return keep


# ------------------------------------------------------------------ one step


def encode(run: Run, ex: Example) -> list[int]:
    ids = run.prompt_cache.get(ex.id)
    if ids is None:
        ids = encode_prompt(run.tokenizer, ex, run.cfg.max_slate, run.cfg.max_rank)
        run.prompt_cache[ex.id] = ids
    return ids


def rollout_generator(seed: int, step: int, slot: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(int(np.random.SeedSequence([seed, step, slot]).generate_state(1)[0]))


def update_is_finite(loss: float, grad_norm: float, strategy: str) -> bool:
    """Whether a step's update may be applied (``update_skipped`` is its negation). Under
    DeepSpeed the engine has already stepped inside backward, whatever this says; a non-finite
    loss still counts there, so that ``max_bad_steps`` stops a diverged run, but a gradient
    norm the engine did not report (NaN from sharded.clip_grad_norm) must not stop a healthy one."""
    return math.isfinite(loss) and (strategy == "deepspeed" or math.isfinite(grad_norm))


def train_step(run: Run, step: int) -> dict[str, Any]:
    cfg, model, tok, acc = run.cfg, run.model, run.tokenizer, run.accelerator
    t_start = time.perf_counter()
    g = cfg.group_size
    batch = [run.train[i] for i in batch_indices(step, cfg.prompts_per_step, len(run.train), cfg.seed)]
    batch = batch[acc.process_index :: acc.num_processes]  # this process's prompt groups
    prompts = [encode(run, ex) for ex in batch]

    # 1. rollout: G samples per prompt, prompt prefilled once, all groups in one batch.
    # Each group draws from its own generator seeded by (seed, step, global prompt slot),
    # so its samples do not depend on how many processes share the step.
    model.eval()
    slots = range(acc.process_index, cfg.prompts_per_step, acc.num_processes)
    generators = [rollout_generator(cfg.seed, step, slot) for slot in slots]
    # constrained: sample only valid completions (id-tiny: docs/id-tiny.md)
    constraint = decoding_constraint(tok, batch, cfg.max_slate, cfg.max_rank) if cfg.constrained_rollouts else None
    with full_params(model, run.strategy):
        rolls = generate(model, tok, prompts, g, cfg.max_new_tokens, cfg.temperature, cfg.top_p, generators, constraint=constraint,
                         static_cache=cfg.static_decode)
    t_rewards = time.perf_counter()
    texts = decode_completions(tok, rolls.completions)

    # 2. parse and reward, each phase on its own
    pool_of = [ex for ex in batch for _ in range(g)]  # [B] group-major
    parsed = [
        parse_completion(t, ex.num_candidates, cfg.max_slate, cfg.max_rank, candidate_labels(tok, ex))
        for t, ex in zip(texts, pool_of, strict=True)
    ]
    rewards = phase_rewards(parsed, [ex.grades() for ex in pool_of], cfg.slate_reward, cfg.rank_k, cfg.invalid_penalty)
    r_slate = rewards.slate.view(-1, g)  # [P, G]
    r_rank = rewards.rank.view(-1, g)  # [P, G]

    # 3. advantage: per-phase token masks from character offsets, then the estimator
    lengths = torch.tensor([len(c) for c in rolls.completions])  # [B]
    t_max = max(1, int(lengths.max()))
    n_slate = torch.tensor(slate_token_counts(tok, rolls.completions, texts, [p.slate_end for p in parsed]))
    slate_mask, rank_mask = phase_masks(n_slate, lengths, t_max)  # [B, T] each
    estimator = core_algos.ADVANTAGE_ESTIMATORS[cfg.advantage_estimator]
    token_adv = estimator(r_slate, r_rank, slate_mask, rank_mask, cfg.rank_weight, cfg.scale_by_std)  # [B, T]

    # 4. loss, one prompt group per micro-batch, normalized over the whole (global) batch
    t_train = time.perf_counter()
    rewards_s = t_train - t_rewards
    optimizer_s = 0.0
    completion_mask = slate_mask | rank_mask  # [B, T]
    normalizer = core_algos.loss_normalizer(completion_mask, cfg.loss_aggregation, cfg.max_new_tokens)
    if acc.num_processes > 1:
        normalizer = acc.reduce(normalizer.to(acc.device), reduction="sum")
    model.train()
    sharded = run.strategy in SHARDED
    share = cfg.share_prompt_prefix and not sharded  # one model call per micro-batch under an engine (sharded.py)
    # the policy the rollouts were sampled from: under the constraint, the softmax over the allowed tokens
    allowed = None
    if constraint is not None and cfg.constrained_logprobs:
        allowed = allowed_masks(constraint, rolls.completions, [r // g for r in range(len(rolls.completions))], len(tok))
    old_logps: list[torch.Tensor] = []
    entropies: list[torch.Tensor] = []
    stats: Counter[str] = Counter()
    params = [q for q in model.parameters() if q.requires_grad]
    finite, grad_norms = True, []
    # μ = ppo_epochs passes over the batch, one optimizer step after each: from the second
    # pass on the ratio to the rollout policy moves away from 1 and the clip acts
    for epoch in range(cfg.ppo_epochs):
        for p, prompt in enumerate(prompts):
            rows = slice(p * g, (p + 1) * g)
            if run.strategy == "deepspeed":  # DeepSpeed steps inside backward: only after the last micro-batch
                acc.gradient_state._set_sync_gradients(p == len(prompts) - 1)
            group_allowed = None if allowed is None else allowed[rows]
            logp, mask = completion_logprobs(
                model, prompt, rolls.completions[rows], tok.pad_token_id, cfg.temperature, share,
                allowed=group_allowed, entropy=entropies if epoch == 0 else None,
            )  # fmt: skip
            mask = mask & completion_mask[rows, : mask.shape[1]].to(mask.device)
            if epoch == 0:  # before any update of this step: the rollout policy itself
                old_logps.append(logp.detach())
            adv = token_adv[rows, : logp.shape[1]].to(logp.device)
            token_loss, clipped = core_algos.clipped_surrogate(logp, old_logps[p], adv, cfg.clip_eps_low, cfg.clip_eps_high)
            if cfg.kl_beta > 0:
                ref_logp = reference_logprobs(run, prompt, rolls.completions[rows], group_allowed)
                kl = core_algos.kl_k3(logp, ref_logp)
                token_loss = token_loss + cfg.kl_beta * kl
                stats["kl_sum"] += float((kl * mask).sum()) / cfg.ppo_epochs
            loss = core_algos.aggregate_loss(token_loss, mask, cfg.loss_aggregation, normalizer)
            acc.backward(loss * acc.num_processes)
            stats["loss"] += loss.item() / cfg.ppo_epochs
            stats["clipped"] += float((clipped & mask).sum()) / cfg.ppo_epochs
            stats["tokens"] += float(mask.sum()) / cfg.ppo_epochs
            if epoch == 0:
                stats["train_tokens"] += (len(prompt) + mask.shape[1]) * g if not share else len(prompt) + mask.shape[1] * g

        # 5. optimizer step, skipped when the loss or gradient is not finite
        t_opt = time.perf_counter()
        if sharded:  # the engine has reduced (and DeepSpeed has already clipped and stepped, see sharded.py)
            grad_norm = clip_grad_norm(acc, model, cfg.max_grad_norm)
        else:
            if acc.num_processes > 1:
                for q in params:
                    if q.grad is not None:
                        q.grad = acc.reduce(q.grad, reduction="mean")
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        grad_norms.append(float(grad_norm))
        # the clipped gradient is what is applied: a NaN max_grad_norm makes it NaN from a finite norm
        ok = update_is_finite(stats["loss"], float(grad_norm), run.strategy) and (sharded or tensors_finite(q.grad for q in params))
        finite = ok and guarded_step(run, params)
        run.optimizer.zero_grad(set_to_none=True)
        optimizer_s += time.perf_counter() - t_opt
        if not finite:  # no further pass from a skipped update
            break
    run.scheduler.step()
    forward_backward_s = time.perf_counter() - t_train - optimizer_s
    grad_norm = grad_norms[0]  # the first pass's: the on-policy gradient, comparable across μ
    # [B, T] entropy of the rollout policy (each group's tensor is as wide as its longest completion)
    ent_tokens = torch.cat([torch.nn.functional.pad(e.cpu(), (0, t_max - e.shape[1])) for e in entropies]) if entropies else None

    # 6. metrics of this step over all processes (the contract is docs/metrics.md)
    stats["rows"], stats["completion_tokens"] = float(len(lengths)), float(lengths.sum())
    stats["slate_tokens"], stats["rank_tokens"] = float(slate_mask.sum()), float(rank_mask.sum())
    if acc.num_processes > 1:
        r_slate, r_rank = acc.gather(r_slate), acc.gather(r_rank)  # [P_global, G]
        valid = acc.gather(torch.stack([rewards.slate_valid, rewards.rank_valid]).T.contiguous())  # [B_global, 2]
        slate_valid, rank_valid = valid[:, 0], valid[:, 1]
        error_counts = acc.reduce(rewards.error_counts.to(acc.device), reduction="sum").cpu()
        counts = acc.reduce(torch.tensor([float(rewards.errors.get(k, 0)) for k in ERROR_KINDS]), reduction="sum")
        rewards.errors = Counter({k: int(v) for k, v in zip(ERROR_KINDS, counts.tolist(), strict=True)})
        keys = ["clipped", "tokens", "kl_sum", "loss", "rows", "completion_tokens", "slate_tokens", "rank_tokens"]
        tallies = acc.reduce(torch.tensor([float(stats[k]) for k in keys]), reduction="sum")
        for k, v in zip(keys, tallies.tolist(), strict=True):  # assigned: Counter.update would add
            stats[k] = v
    else:
        slate_valid, rank_valid = rewards.slate_valid, rewards.rank_valid
        error_counts = rewards.error_counts
    a_slate = core_algos.group_advantages(r_slate, cfg.scale_by_std)
    a_rank = core_algos.group_advantages(r_rank, cfg.scale_by_std)
    corr, corr_groups = core_algos.within_group_correlation(r_slate, r_rank)
    seconds = time.perf_counter() - t_start
    row: dict[str, Any] = {
        "step": step + 1,
        "reward/slate": float(r_slate.mean()),
        "reward/rank": float(r_rank.mean()),
        "reward/joint": float((r_slate + cfg.rank_weight * r_rank).mean()),
        "format/valid_rate": float((slate_valid & rank_valid).float().mean()),
        "format/slate_valid_rate": float(slate_valid.float().mean()),
        "format/rank_valid_rate": float(rank_valid.float().mean()),
        "adv/slate_abs_mean": float(a_slate.abs().mean()),
        "adv/rank_abs_mean": float(a_rank.abs().mean()),
        "groups/slate_zero_var_frac": float(core_algos.zero_variance_fraction(r_slate)),
        "groups/rank_zero_var_frac": float(core_algos.zero_variance_fraction(r_rank)),
        **spread_metrics(a_slate, a_rank),
        "groups/slate_rank_corr": float(corr) if int(corr_groups) else None,
        "groups/slate_rank_corr_groups": int(corr_groups),
        **rollout_errors(error_counts, cfg.rank_k),
        **{f"parse_errors/{k}": rewards.errors.get(k, 0) for k in ERROR_KINDS},
        "loss": stats["loss"],
        "kl": stats["kl_sum"] / max(1.0, stats["tokens"]) if cfg.kl_beta > 0 else None,
        "clip_frac": stats["clipped"] / max(1.0, stats["tokens"]),
        **entropy_by_phase(ent_tokens, slate_mask, rank_mask),
        "grad_norm": float(grad_norm),
        "update_skipped": not finite,
        "lr": run.scheduler.get_last_lr()[0],
        "completion_len": stats["completion_tokens"] / stats["rows"],
        "phase_tokens/slate": stats["slate_tokens"] / stats["rows"],
        "phase_tokens/rank": stats["rank_tokens"] / stats["rows"],
        "rollout/seconds": rolls.seconds,
        "rollout/tokens_per_s": rolls.generated_tokens / max(rolls.seconds, 1e-9),
        "rollout/prefill_seconds": rolls.prefill_seconds,
        "time/rewards_s": rewards_s,
        "time/forward_backward_s": forward_backward_s,
        "time/optimizer_s": optimizer_s,
        "tokens_per_s": stats["train_tokens"] / max(seconds - rolls.seconds, 1e-9),
        "step_time_s": seconds,
    }
    return row


def spread_metrics(a_slate: torch.Tensor, a_rank: torch.Tensor) -> dict[str, float]:
    """Each phase's advantage spread: std over the batch and mean within-group std."""
    out = {}
    for name, adv in (("slate", a_slate), ("rank", a_rank)):
        std, group_std = core_algos.advantage_spread(adv)
        out[f"adv/{name}_std"], out[f"adv/{name}_group_std"] = float(std), float(group_std)
    return out


def rollout_errors(counts: torch.Tensor, k: int) -> dict[str, float | int]:
    """The rollouts' slate-miss / rank-drop split at ``k`` (counts from
    core_algos.phase_error_counts), shares of the missed relevant items as in eval."""
    relevant, slate_miss, rank_drop = (int(c) for c in counts)
    missed = slate_miss + rank_drop
    return {
        f"rollout/errors@{k}/relevant": relevant,
        f"rollout/errors@{k}/slate_miss_count": slate_miss,
        f"rollout/errors@{k}/rank_drop_count": rank_drop,
        f"rollout/errors@{k}/slate_miss": slate_miss / missed if missed else 0.0,
        f"rollout/errors@{k}/rank_drop": rank_drop / missed if missed else 0.0,
    }


def entropy_by_phase(entropy: torch.Tensor | None, slate_mask: torch.Tensor, rank_mask: torch.Tensor) -> dict[str, float]:
    """Mean policy entropy (nats per token, of the distribution sampled from) over each
    phase's tokens: the collapse diagnostic of docs/metrics.md."""
    if entropy is None:
        return {}
    t = entropy.shape[1]
    out = {}
    for name, m in (("slate", slate_mask), ("rank", rank_mask)):
        m = m[:, :t].to(entropy.device)
        out[f"entropy/{name}"] = float((entropy * m).sum() / m.sum().clamp(min=1))
    return out


def tensors_finite(tensors: Any) -> bool:
    """Whether every value is finite; of a sharded (FSDP2 DTensor) parameter, this process's shard.
    Read as max |x| per tensor (NaN and inf propagate through it, and it cannot overflow): a
    third of ``isfinite(t).all()``'s time on SmolLM2's 135 M weights, checked twice a step."""
    local = (t.to_local() if hasattr(t, "to_local") else t for t in tensors if t is not None)
    return all(bool(t.abs().amax().isfinite()) for t in local if t.numel())


@torch.no_grad()
def guarded_step(run: Run, params: list[torch.Tensor]) -> bool:
    """optimizer.step(), undone when it leaves a non-finite weight (a finite gradient can:
    an inf or NaN learning rate); returns whether the step was kept. The weights are copied
    before the step (one copy of the trainable parameters; LoRA: the adapters only). The
    optimizer's moments keep the step's finite gradient. DeepSpeed has stepped already."""
    if run.strategy == "deepspeed":
        run.optimizer.step()
        return True
    before = [q.detach().clone() for q in params]
    run.optimizer.step()
    ok = torch.tensor(float(tensors_finite(params)))
    if run.strategy in SHARDED and run.accelerator.num_processes > 1:  # each process checks its shards
        ok = run.accelerator.reduce(ok.to(run.accelerator.device), reduction="sum") / run.accelerator.num_processes
    if float(ok) == 1.0:
        return True
    for q, b in zip(params, before, strict=True):
        q.copy_(b)
    return False


@torch.no_grad()
def reference_logprobs(run: Run, prompt: list[int], completions: list[list[int]], allowed: torch.Tensor | None = None) -> torch.Tensor:
    cfg = run.cfg
    if run.ref_model is not None:
        logp, _ = completion_logprobs(
            run.ref_model, prompt, completions, run.tokenizer.pad_token_id, cfg.temperature, cfg.share_prompt_prefix, allowed
        )  # fmt: skip
        return logp
    with run.model.disable_adapter():
        logp, _ = completion_logprobs(
            run.model, prompt, completions, run.tokenizer.pad_token_id, cfg.temperature, cfg.share_prompt_prefix, allowed
        )  # fmt: skip
    return logp


# ------------------------------------------------------------------ the loop


def loop(run: Run, stop: dict[str, int | None], budget: TimeBudget | None = None) -> tuple[int, int, int]:
    """The RL steps until max_steps, a stop request or the end of the ``max_time`` budget
    (``budget``: then ``stop["max_time"]`` is set); returns (steps done, consecutive
    skipped steps at the end, the step whose state is on disk)."""
    cfg, out = run.cfg, Path(run.cfg.output_dir)
    bad_steps = 0
    step = saved = run.start_step  # at 0: the start of RL, a fresh run or the saved warm-up
    bar = Progress(cfg.max_steps, cfg.advantage_estimator, every=cfg.log_every, initial=step, enabled=run.log is not None)
    try:
        if cfg.eval_every and run.valid and step == 0 and stop["signal"] is None and (run.log is not None or run.strategy in SHARDED):
            scores = validate(run)  # under FSDP every process takes part in gathering the weights
            if run.log is not None:
                run.log.write({"step": 0, **scores})  # the warm start's score, the curve's origin
        while step < cfg.max_steps and stop["signal"] is None:
            if budget is not None and out_of_time(run, budget):
                stop["max_time"] = step
                break
            t0 = budget.clock() if budget is not None else 0.0
            row = train_step(run, step)
            step += 1
            bad_steps = bad_steps + 1 if row["update_skipped"] else 0
            if cfg.eval_every and step % cfg.eval_every == 0 and run.valid:
                row.update(validate(run))
            if run.log and (step % cfg.log_every == 0 or step == cfg.max_steps or row["update_skipped"]):
                run.log.write(row)
            bar.update(1, slate=row["reward/slate"], rank=row["reward/rank"], valid=row["format/valid_rate"], loss=row["loss"])
            if bad_steps >= cfg.max_bad_steps:
                raise TrainingStopped(
                    f"{bad_steps} consecutive steps had a non-finite loss, gradient or update (last at step {step}); "
                    f"stopping. The last good checkpoint is {latest_checkpoint(out)}"
                )
            if bad_steps == 0 and (step % cfg.save_every == 0 or step == cfg.max_steps):
                checkpoint(run, step)
                saved = step
            if budget is not None:
                budget.record(budget.clock() - t0)  # the step with its evaluation and checkpoint
        stopped = stop["signal"] is not None or stop.get("max_time") is not None
        if stopped and step < cfg.max_steps and bad_steps == 0 and step != saved:
            checkpoint(run, step)  # not when just saved: re-saving a step replaces its folder
            saved = step
        if stop["signal"] is not None and step < cfg.max_steps and run.log:
            run.log.note(f"interrupted at step {step} by {signal.Signals(stop['signal']).name}; "
                         f"saved state: step {saved}; resume with --resume")
        elif stop.get("max_time") is not None and run.log:
            run.log.note(f"max_time ({cfg.max_time}) reached: stopped early at step {step} of {cfg.max_steps}; "
                         f"saved state: step {saved}; resume with --resume")
        if bad_steps > 0 and run.log:
            run.log.note(f"ended with {bad_steps} skipped step(s); no final model written")
    finally:
        bar.close()
        if run.log:
            run.log.close()
    return step, bad_steps, saved


def out_of_time(run: Run, budget: TimeBudget) -> bool:
    """Whether the next step would overrun ``max_time``; every process takes the same
    decision (the slowest process's clock), or one would wait forever in a reduction."""
    late = budget.next_would_exceed()
    if run.accelerator.num_processes > 1:
        flag = torch.tensor(float(late), device=run.accelerator.device)
        late = bool(run.accelerator.reduce(flag, reduction="sum") > 0)
    return late


def checkpoint(run: Run, step: int) -> None:
    acc = run.accelerator
    model_sd, optim_sd = full_state_dicts(run)
    save_checkpoint(
        run.cfg.output_dir, step, acc.unwrap_model(run.model) if run.strategy in SHARDED else run.model, run.tokenizer, run.optimizer, run.scheduler,
        {"seed": run.cfg.seed, "num_processes": acc.num_processes, "launch": run.strategy}, run.cfg.keep_last,
        process_index=acc.process_index, barrier=acc.wait_for_everyone, model_state=model_sd, optimizer_state=optim_sd,
        answer_format=None if run.cfg.use_lora else trained_format(run),
    )


def trained_format(run: Run) -> dict[str, Any]:
    """The ``fgrpo.json`` of the model this run trains (the standard prompt, its limits)."""
    cfg = run.cfg
    return answer_format(run.tokenizer, cfg.max_slate, cfg.max_rank, "standard", cfg.max_new_tokens)


def validate(run: Run) -> dict[str, float]:
    from fgrpo.evaluation.evaluate import predict, score_predictions

    examples = run.valid[: run.cfg.eval_limit]
    constrained = run.cfg.constrained_rollouts if run.cfg.eval_constrained is None else run.cfg.eval_constrained
    with full_params(run.model, run.strategy):
        preds = predict(
            run.model, run.tokenizer, examples, run.cfg.max_slate, run.cfg.max_rank, run.cfg.max_new_tokens,
            progress=False, constrained=constrained,
        )  # fmt: skip
    scores = score_predictions(preds, examples)
    return {f"valid/{k}": v for k, v in scores.items() if isinstance(v, (int, float))}


def save_final_model(
    run: Run, folder: Path, state_dict: dict[str, torch.Tensor] | None = None, stopped_at: int | None = None
) -> None:
    """A normal Hugging Face folder; with LoRA, the adapters merged into the base weights.
    Written to a temporary folder, then renamed: a kill leaves the complete folder or none.
    ``state_dict``: the gathered full weights of a sharded model (sharded.full_state_dicts).
    ``stopped_at``: the step a ``max_time`` stop ended at (the card says so)."""
    import shutil

    from fgrpo.models.card import write_model_card

    model = run.accelerator.unwrap_model(run.model) if run.strategy in SHARDED else run.model
    if run.cfg.use_lora:
        model = model.merge_and_unload()
    check_finite(model.state_dict() if state_dict is None else state_dict, f"final model {folder}")
    tmp = folder.with_name(f".tmp-{folder.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, state_dict=state_dict)
    run.tokenizer.save_pretrained(tmp)
    metrics_file = Path(run.cfg.output_dir) / "metrics.jsonl"
    last = [r for r in read_metrics(metrics_file) if "reward/slate" in r][-1:] if metrics_file.is_file() else []
    summary = {k: v for k, v in (last[0] if last else {}).items() if k.startswith(("reward/", "format/", "valid/")) or k == "step"}
    training = f"{run.cfg.advantage_estimator} (fgrpo train)"
    if stopped_at is not None:
        training += f", stopped early by max_time at step {stopped_at} of {run.cfg.max_steps}"
    write_model_card(tmp, run.cfg, training=training, metrics=summary, answer=trained_format(run))
    write_answer_format(tmp, trained_format(run))
    fsync_tree(tmp)
    publish(tmp, folder)
