"""``fgrpo train``: the F-GRPO / GRPO recipe, as every command: config -> set up (seeds,
threads, output folder, saved config) -> build (data, model, optimizer, launch) -> run (the
RL loop of :mod:`fgrpo.trainer.train`) -> write (the final model).

The training step and loop themselves, and what a step reads and writes (checkpoints,
metrics), live in the library: :mod:`fgrpo.trainer`.
"""

from __future__ import annotations

import json
import random
import signal
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fgrpo.commands.inputs import answer_limits, fit_prompts, train_valid
from fgrpo.commands.setup import setup_run
from fgrpo.config.commands import TrainConfig, check_resume_config
from fgrpo.config.progress import TimeBudget, parse_duration
from fgrpo.data.splits import write_data_report
from fgrpo.kernels.onednn import use_onednn_linears
from fgrpo.models.answer_format import check_answer_format
from fgrpo.models.loading import add_lora, enable_checkpointing, load_model, load_tokenizer
from fgrpo.trainer.checkpoint import (
    STATE_FILE,
    latest_checkpoint,
    load_checkpoint,
    load_model_weights,
    warmup_checkpoint,
)
from fgrpo.trainer.launch import (
    SHARDED,
    LaunchError,
    check_launch,
    enable_autocast,
    precision_warnings,
)
from fgrpo.trainer.metrics_log import MetricsLog
from fgrpo.trainer.sharded import full_state_dicts, make_accelerator, prepare, resume_fsdp
from fgrpo.trainer.train import (
    Run,
    TrainingInterrupted,
    TrainingStopped,
    loop,
    make_scheduler,
    resumed_rows,
    save_final_model,
    warm_up,
)

__all__ = ["STOPPED_FILE", "TrainingInterrupted", "TrainingStopped", "setup", "stopped_early", "train"]

STOPPED_FILE = "stopped_early.json"  # written next to the final model when max_time ended the run


def stopped_early(output_dir: str | Path) -> dict[str, Any] | None:
    """The ``stopped_early.json`` record of a run that ``max_time`` stopped (None: it was not)."""
    path = Path(output_dir) / STOPPED_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_stopped(out: Path, command: str, step: int, max_steps: int, max_time: str | None) -> None:
    """Mark ``out`` as stopped early: the step reached, the budget, how to continue."""
    record = {"stopped_early": True, "reason": "max_time", "max_time": max_time, "step": step, "max_steps": max_steps,
              "resume": f"fgrpo {command} ... --resume (the same config)"}  # fmt: skip
    (out / STOPPED_FILE).write_text(json.dumps(record, indent=1) + "\n")


def setup(cfg: TrainConfig, resume: bool = False) -> Run:
    """Set up and build a run: launch, seeds, output folder and config, data, model, optimizer,
    and on ``resume`` the latest checkpoint's state."""
    strategy = check_launch(cfg)  # unsupported launches refused here, before anything is built
    accelerator = make_accelerator(strategy)
    if strategy in SHARDED and cfg.prompts_per_step % accelerator.num_processes:
        # an engine reduces inside every backward: processes with more prompt groups than
        # others would wait forever for a partner in their extra reductions
        raise LaunchError(f"under {strategy}, prompts_per_step ({cfg.prompts_per_step}) must be a multiple of the "
                          f"number of processes ({accelerator.num_processes})")
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    if resume:
        check_resume_config(cfg, Path(cfg.output_dir) / "config.yaml")  # before it is overwritten
    out = setup_run(cfg, save=accelerator.is_main_process)  # threads, torch seed, folder, config.yaml

    data_report: dict[str, Any] = {}
    train, valid = train_valid(cfg, data_report)
    check_answer_format(cfg.model, answer_limits(cfg))
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg.model, cfg.dtype, cfg.seed, cfg.tiny_hidden_size, cfg.tiny_num_layers).to(accelerator.device)
    fitted = fit_prompts(cfg, tokenizer, model, {"train": train, "valid": valid}, cfg.max_new_tokens, data_report)
    train, valid = fitted["train"], fitted["valid"]
    write_data_report(out if accelerator.is_main_process else None, data_report)
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
    if cfg.mixed_precision == "bf16":  # before the reference copy and LoRA, which then share it
        enable_autocast(model, torch.bfloat16, accelerator.device.type)
    log = MetricsLog(out, tensorboard=cfg.tensorboard) if accelerator.is_main_process else None
    if log:
        log.note(f"launch: {strategy}, {accelerator.num_processes} process(es), {accelerator.device.type}")
        for message in precision_warnings(cfg):
            warnings.warn(message, stacklevel=2)
            log.note(message)

    ckpt = latest_checkpoint(out) if resume else None
    if ckpt is not None and strategy == "deepspeed":
        raise LaunchError(f"--resume of a DeepSpeed run is not implemented (no optimizer state is saved); "
                          f"start a new run from its weights: model={ckpt / 'model'}")
    warm = warmup_checkpoint(out) if resume and cfg.sft_warmup_steps > 0 else None
    start_step = int(json.loads((ckpt / STATE_FILE).read_text())["step"]) if ckpt is not None else 0
    if log and resume:
        log.keep(resumed_rows(start_step, warmup_kept=warm is not None or ckpt is not None))
    if cfg.sft_warmup_steps > 0:  # before the reference copy and LoRA: both start from the warmed-up model
        warm_up(cfg, model, tokenizer, train, accelerator, log, warm, relog=ckpt is None)
    ref_model = None
    if cfg.kl_beta > 0 and not cfg.use_lora:  # with LoRA the reference is the base with adapters off
        import copy

        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    if cfg.use_lora:
        model = add_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules)
    if cfg.onednn_linear:  # after LoRA: its adapters are new nn.Linear layers
        use_onednn_linears(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay
    )
    scheduler = make_scheduler(optimizer, cfg)  # on the bare AdamW: it sets the lr the engine's optimizer uses
    if strategy in SHARDED:
        if ckpt is not None:  # full weights into the full model, before it is sharded
            load_model_weights(model, ckpt / "model")
        model, optimizer = prepare(accelerator, strategy, model, optimizer, cfg.group_size)
    run = Run(cfg, model, tokenizer, optimizer, scheduler, train, valid, accelerator, log, ref_model=ref_model, strategy=strategy)
    if ckpt is not None and strategy == "fsdp":
        state = resume_fsdp(run, ckpt)
    elif ckpt is not None:
        launch = json.loads((ckpt / STATE_FILE).read_text()).get("launch")
        if launch == "fsdp":  # its optimizer state is keyed by name
            raise LaunchError(f"{ckpt} was written by an FSDP run; resume it with the same launch")
        if launch == "deepspeed":  # its optimizer.pt is empty: AdamW would fail on a missing key
            raise LaunchError(f"{ckpt} was written by a DeepSpeed run, which saves no optimizer state; "
                              f"start a new run from its weights: model={ckpt / 'model'}")
        state = load_checkpoint(ckpt, model, optimizer, scheduler, accelerator.process_index)
    if ckpt is not None:
        run.start_step = int(state["step"])
        if log:
            log.note(f"resumed from {ckpt} at step {run.start_step}")
    return run


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Raises TrainingInterrupted after a signal (a checkpoint saved), TrainingStopped when
    the run ends on non-finite steps (no final model written). When ``max_time`` would be
    overrun, the run checkpoints, writes its final model as a finished one does and
    ``stopped_early.json`` (:func:`stopped_early`), and returns normally; ``--resume``
    continues it exactly."""
    # Ctrl-C / SIGTERM: finish the current step (or the whole SFT warm-up), save, exit with
    # 128 + the signal; a second one aborts. Installed before setup, which runs the warm-up.
    stop: dict[str, int | None] = {"signal": None}

    def request_stop(signum: int, frame: Any) -> None:
        if stop["signal"] is not None:
            raise KeyboardInterrupt
        stop["signal"] = signum

    budget = TimeBudget(parse_duration(cfg.max_time))  # from the command's start: set-up and warm-up count
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        run = setup(cfg, resume)
        step, bad_steps, saved = loop(run, stop, budget)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out = Path(cfg.output_dir)
    if bad_steps > 0:  # the last updates were skipped: the run did not reach max_steps good steps
        raise TrainingStopped(f"the last {bad_steps} step(s) had a non-finite loss, gradient or update (last at "
                              f"step {step}); no final model written. The last good checkpoint is {latest_checkpoint(out)}")
    if stop["signal"] is not None and step < cfg.max_steps:
        name = signal.Signals(stop["signal"]).name
        where = f"checkpoint of step {saved}" if saved > 0 else "the start of RL" + (" (warm-up saved)" if cfg.sft_warmup_steps else "")
        raise TrainingInterrupted(f"interrupted by {name} at step {step}; resume with --resume from the {where}", stop["signal"])
    early = stop.get("max_time") is not None and step < cfg.max_steps
    model_sd, _ = full_state_dicts(run)  # every process takes part under FSDP
    if run.accelerator.is_main_process:
        save_final_model(run, out / "model", model_sd, stopped_at=step if early else None)
        if early:
            write_stopped(out, "train", step, cfg.max_steps, cfg.max_time)
        else:
            (out / STOPPED_FILE).unlink(missing_ok=True)  # a resumed run that finished
    # every process done writing, then the process group destroyed (accelerate's advice):
    # left to exit-time destructors, gloo's can abort a run that has finished
    run.accelerator.wait_for_everyone()
    run.accelerator.end_training()
    return out
