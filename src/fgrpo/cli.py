"""The ``fgrpo`` command: ``fgrpo COMMAND --config FILE [key=value ...]``.

Each command reads one config dataclass: a YAML file, then ``key=value`` overrides, every
key checked (``fgrpo options COMMAND`` lists them with their help and defaults).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from fgrpo.config import ConfigError, field_help, load_config

# rich markup reads "[key=value ...]" as a style tag and drops it: "\\[" keeps the bracket
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.replace("[", "\\["))
EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


def _help(summary: str, command: str) -> str:
    """A command's help: its summary, then how it takes its options (escaped for rich)."""
    return (
        f"{summary}\n\nOptions: fgrpo {command} \\[--config FILE.yaml] \\[key=value ...]: a YAML file, "
        f"then overrides, every key checked; `fgrpo options {command}` lists them with help and defaults."
    )


def _config_classes() -> dict[str, type]:
    from fgrpo.config.commands import (
        CheckDataConfig,
        EvalConfig,
        PrepareConfig,
        PretrainItemsConfig,
        RankConfig,
        ReportConfig,
        SFTConfig,
        TrainConfig,
    )

    return {"train": TrainConfig, "sft": SFTConfig, "pretrain-items": PretrainItemsConfig, "prepare": PrepareConfig,
            "eval": EvalConfig, "rank": RankConfig, "report": ReportConfig, "check-data": CheckDataConfig}


_LOADED: dict[str, Any] = {}  # the command's config, for error messages that name its output_dir


def _load(command: str, config: Path | None, overrides: list[str]) -> Any:
    try:
        cfg = load_config(_config_classes()[command], config, overrides)
    except ConfigError as e:
        typer.echo(f"config error: {e}", err=True)
        raise typer.Exit(2) from e
    _LOADED["cfg"] = cfg
    return cfg


# what torch.save's C++ writer says when a write fails (it raises RuntimeError, no errno)
_TORCH_WRITE_FAILURES = ("iostream error", "file write failed", "unexpected pos", "PytorchStreamWriter failed")


def disk_error_message(e: BaseException, output_dir: str | None = None) -> str | None:
    """One line for a failed write or read (None: not one): names the path and says
    "no space left on device" or "cannot write to ..."; nothing already written is lost."""
    import errno
    import shutil

    where = output_dir or "the output folder"
    if isinstance(e, OSError):
        path = e.filename or where
        code = e.errno
        if code == errno.ENOSPC:
            return f"no space left on device writing {path}; what was written before is intact (free space, then rerun; train: --resume)"
        if code in (errno.EACCES, errno.EPERM, errno.EROFS):
            why = "read-only file system" if code == errno.EROFS else "permission denied"
            return f"cannot write to {path}: {why}"
        if code in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
            return f"cannot write to {path}: {e.strerror or 'a part of the path is a file'}"
        if code == errno.ENOENT:
            return f"{path}: no such file or folder"
        return f"cannot read or write {path}: {e.strerror or e}"
    if isinstance(e, RuntimeError) and any(m in str(e) for m in _TORCH_WRITE_FAILURES):
        try:
            full = shutil.disk_usage(output_dir or ".").free < 64 * 2**20
        except OSError:
            full = False
        why = "no space left on device" if full else "the write failed (disk full or I/O error)"
        return f"cannot write under {where}: {why}; what was written before is intact (torch: {str(e).strip()[:120]})"
    return None


@app.command(context_settings=EXTRA, help=_help("RL training with F-GRPO (or GRPO: advantage_estimator=grpo).", "train"))
def train(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in output_dir."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate config, launch and data, build the model without weights, print the per-GPU memory estimate; train nothing."),
    accelerate_config: Path | None = typer.Option(None, "--accelerate-config", help="--dry-run: an accelerate config file (strategy, GPUs, mixed precision)."),
    num_gpus: int | None = typer.Option(None, "--num-gpus", min=1, help="--dry-run: number of GPUs (default: the accelerate file's, else 1)."),
    strategy: str | None = typer.Option(None, "--strategy", help="--dry-run: ddp | fsdp | deepspeed (ZeRO-2; the old name zero2 is accepted) (default: the accelerate file's, else ddp)."),
    prompt_tokens: int | None = typer.Option(None, "--prompt-tokens", min=1, help="--dry-run: prompt length to assume (default: measured, else 1024)."),
    gpu_memory: float = typer.Option(80.0, "--gpu-memory-gib", help="--dry-run: GPU memory the 'fits' column compares with."),
) -> None:
    """RL training with F-GRPO (or GRPO: advantage_estimator=grpo)."""
    cfg = _load("train", config, ctx.args)
    if dry_run:
        from fgrpo.commands.dry_run import dry_run as run_dry

        run_dry(cfg, accelerate_config, num_gpus, strategy, prompt_tokens, gpu_memory, echo=typer.echo)
        return
    from fgrpo.commands.train import TrainingInterrupted, TrainingStopped
    from fgrpo.commands.train import train as run_train

    try:
        out = run_train(cfg, resume=resume)
    except TrainingStopped as e:
        typer.echo(f"training stopped: {e}", err=True)
        raise typer.Exit(3) from e
    except TrainingInterrupted as e:  # not "done": 130 (SIGINT) / 143 (SIGTERM)
        typer.echo(f"training interrupted: {e}", err=True)
        raise typer.Exit(e.exit_code) from e
    _done(out, "train")


def _done(out: Path, command: str, shown: Path | None = None) -> None:
    """'done: OUT', or for a run that max_time stopped early, what it reached and how to go on (exit 0)."""
    from fgrpo.commands.train import stopped_early

    record = stopped_early(out)
    if record is not None:
        typer.echo(f"stopped early: max_time ({record['max_time']}) reached at step {record['step']} of "
                   f"{record['max_steps']}; the model so far is in {out / 'model'}; continue with "
                   f"`fgrpo {command} ... --resume` (the same config)")
        return
    typer.echo(f"done: {shown or out}")


@app.command(context_settings=EXTRA, help=_help("Supervised warm start on targets in the output format.", "sft"))
def sft(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file."),
    resume: bool = typer.Option(False, "--resume", help="Continue a run that max_time stopped, from its saved state."),
) -> None:
    """Supervised warm start on targets in the output format."""
    from fgrpo.commands.sft import run_sft

    folder = run_sft(_load("sft", config, ctx.args), resume=resume)
    _done(folder.parent, "sft", shown=folder)


@app.command(context_settings=EXTRA, name="pretrain-items", help=_help("Build the id-tiny preset (one token per item) and pretrain it on next items (docs/id-tiny.md).", "pretrain-items"))
def pretrain_items(ctx: typer.Context, config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file.")) -> None:
    """Build the id-tiny preset (one token per item) and pretrain it on next items (docs/id-tiny.md)."""
    from fgrpo.commands.pretrain_items import run_pretrain_items

    out = run_pretrain_items(_load("pretrain-items", config, ctx.args))
    typer.echo(f"done: {out}")


@app.command(context_settings=EXTRA, help=_help("Build train/valid/test JSONL and a manifest from a raw dataset.", "prepare"))
def prepare(ctx: typer.Context, config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file.")) -> None:
    """Build train/valid/test JSONL and a manifest from a raw dataset."""
    from fgrpo.commands.prepare import run

    manifest = run(_load("prepare", config, ctx.args))
    skipped = sum(manifest.get("skipped", {}).values())
    if skipped:
        typer.echo(f"data: skipped {skipped} record(s) (invalid ones under skip_invalid, or outside the protocol); by kind in manifest.json 'skipped'", err=True)
    typer.echo(f"done: {manifest.get('output_dir', '')} {manifest.get('counts', '')}")


@app.command(context_settings=EXTRA, name="eval", help=_help("Greedy decoding (or a scorer baseline) on the test split; writes metrics.json, a Markdown table and predictions.jsonl.", "eval"))
def evaluate(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file."),
    limit: int | None = typer.Option(None, "--limit", help="Score only the first N examples (same as limit=N)."),
) -> None:
    """Greedy decoding on the test split; writes metrics.json, a Markdown table and predictions.jsonl."""
    from fgrpo.commands.eval import run_eval

    overrides = list(ctx.args) + ([f"limit={limit}"] if limit is not None else [])
    run_eval(_load("eval", config, overrides))


@app.command(context_settings=EXTRA, name="check-data", help=_help("Check a dataset folder before training: counts, duplicates, histograms, empty texts, tasks, prompt lengths against a model's context (model=...), what the skip rules drop. Exit 1 when a check fails.", "check-data"))
def check_data(
    ctx: typer.Context,
    folder: Path = typer.Argument(..., help="The dataset folder (train/valid/test.jsonl)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file."),
) -> None:
    import dataclasses

    from fgrpo.commands.check_data import REPORT, run_check_data

    # FOLDER set after loading, not as an override: a path is not read as YAML ("true", "a: b")
    cfg = dataclasses.replace(_load("check-data", config, ctx.args), dataset=str(folder))
    report, text = run_check_data(cfg)
    typer.echo(text)
    typer.echo(f"written: {Path(cfg.output_dir) / REPORT}")
    if not report.ok:
        raise typer.Exit(1)


@app.command(context_settings=EXTRA)
def compare(
    ctx: typer.Context,
    experiment: Path = typer.Argument(..., help="Experiment YAML (CompareConfig; docs/compare.md)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the expanded (method, seed) runs and which are done; run nothing."),
    report_only: bool = typer.Option(False, "--report-only", help="Write results.md/json, runs.csv and the plots from the runs finished so far; run nothing."),
) -> None:
    """Several methods x seeds with equal budgets: results table (mean ± 95% CI), curves, costs."""
    from fgrpo.commands.compare import run

    try:
        outcome = run(experiment, list(ctx.args), dry_run=dry_run, report_only=report_only, echo=typer.echo)
    except ConfigError as e:
        typer.echo(f"config error: {e}", err=True)
        raise typer.Exit(2) from e
    if outcome is None:
        return
    typer.echo(outcome.files["results.md"].read_text())
    typer.echo("written: " + ", ".join(str(p) for p in outcome.files.values()))
    if outcome.failures:
        typer.echo(f"{len(outcome.failures)} run(s) failed:\n" + "\n".join(outcome.failures), err=True)
        raise typer.Exit(1)


@app.command(context_settings=EXTRA)
def rank(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file (RankConfig)."),
    model: str | None = typer.Option(None, "--model", help="Model folder written by fgrpo (same as model=...)."),
    input: str | None = typer.Option(None, "--input", "-i", help="JSONL of examples (id, query, candidates, optional task); '-' for stdin."),
    output: str | None = typer.Option(None, "--output", "-o", help="Where to write one JSON line per example; '-' for stdout."),
    batch_size: int | None = typer.Option(None, help="Prompts decoded together (same as batch_size=N)."),
    constrained: bool | None = typer.Option(None, "--constrained/--no-constrained", help="Decode only valid outputs (same as constrained=true)."),
) -> None:
    """Write a slate and a ranking for every example read (relevance labels not needed); key=value overrides as eval's: max_new_tokens, constrained, torch_threads, ..."""
    import dataclasses

    from fgrpo.commands.rank import run_rank
    from fgrpo.data.schema import DataError

    cfg = _load("rank", config, ctx.args)
    given = {"model": model, "input": input, "output": output, "batch_size": batch_size, "constrained": constrained}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in given.items() if v is not None})
    try:
        cfg.validate()
    except ValueError as e:
        typer.echo(f"config error: {e}", err=True)
        raise typer.Exit(2) from e
    try:
        n = run_rank(cfg)
    except DataError as e:  # names the input's line and field
        typer.echo(f"data error: {e}", err=True)
        raise typer.Exit(2) from e
    if cfg.output != "-":
        typer.echo(f"done: {n} example(s) ranked -> {cfg.output}")


@app.command(context_settings=EXTRA)
def report(
    ctx: typer.Context,
    folder: Path = typer.Argument(..., help="An eval, train/sft or compare output folder."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config file (ReportConfig)."),
) -> None:
    """One self-contained HTML page: metrics with CIs, learning and cost plots, the slate-miss / rank-drop breakdown, the predictions to browse."""
    import dataclasses

    from fgrpo.commands.report import run_report

    cfg = dataclasses.replace(_load("report", config, ctx.args), folder=str(folder))
    try:
        out = run_report(cfg)
    except FileNotFoundError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(f"written: {out}")


@app.command()
def options(command: str = typer.Argument(..., help="train | sft | pretrain-items | prepare | eval | rank | report | check-data | compare")) -> None:
    """List a command's config keys with type, default and help."""
    from fgrpo.config.commands import CompareConfig

    classes = {**_config_classes(), "compare": CompareConfig}  # compare loads through load_compare_config
    if command not in classes:
        typer.echo(f"unknown command {command!r}; one of {', '.join(classes)}", err=True)
        raise typer.Exit(2)
    for name, (tp, default, text) in field_help(classes[command]).items():
        typer.echo(f"{name} ({tp}, default {default!r}): {text}")


def main() -> None:
    from fgrpo.data.schema import DataError

    try:
        app()  # standalone: usage errors print and exit 2 themselves
    except ConfigError as e:  # configs validated late (e.g. by a builder) still exit cleanly
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)
    except DataError as e:  # names file, line and field
        print(f"data error: {e}", file=sys.stderr)
        sys.exit(2)
    except UnicodeDecodeError as e:  # input read as text elsewhere (rank --input, raw files)
        print(f"data error: input is not valid UTF-8 (byte {e.start}: {e.reason})", file=sys.stderr)
        sys.exit(2)
    except (OSError, RuntimeError) as e:
        message = disk_error_message(e, getattr(_LOADED.get("cfg"), "output_dir", None))
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
