"""Running an experiment's runs: each command in its own subprocess, measured; resume from
what finished; failures recorded, not fatal.

* **One subprocess per stage of a run** (``python -m fgrpo train|sft|eval --config <file
  written here>``). Peak resident memory is a per-process quantity: measured in-process, the
  second run would inherit the first one's allocator high-water mark. The child's RSS (plus
  its children's) is polled every ``poll_seconds``; the ``RUSAGE_CHILDREN`` maximum is folded
  in only when it grew during that child, since it is the maximum over *every* child waited
  for so far and would otherwise report an earlier, larger run. Wall-clock is per stage
  (train/sft, then eval) and per run (their sum).
* **Resumable.** A run whose folder holds its final ``metrics.json`` is skipped; a run whose
  training finished (``train_phase.json``) only re-runs its evaluation; anything else is
  started over from an empty folder, so its wall-clock and memory are those of one
  uninterrupted run. Both files carry the run's digest (:mod:`fgrpo.experiments.digest`), so
  editing the experiment redoes the runs it changes instead of reusing stale numbers.
* **Extra datasets** (``extra_evals``, :mod:`fgrpo.experiments.extra`): after a run is
  finished, each extra evaluation not done yet is one more ``fgrpo eval`` subprocess with its
  own marker (``runs/<method>/seed<k>/extra/<name>/metrics.json``) and digest, so adding
  ``extra_evals`` to a finished compare runs only them. Their items are checked against the
  main dataset's before any of them runs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgrpo.config import save_config
from fgrpo.config.progress import clock_text
from fgrpo.experiments.expand import expand_runs
from fgrpo.experiments.extra import check_extra_items, with_saved_fit
from fgrpo.experiments.report import CompareOutcome, write_results
from fgrpo.experiments.spec import CompareConfig, RunSpec, budget_text


class RunFailed(RuntimeError):
    """A run's command exited non-zero or did not write what it should have."""


@dataclass
class Stage:
    """One timed subprocess of a run (a training command or the evaluation): its wall-clock,
    CPU time, peak resident memory and exit code."""

    seconds: float
    peak_rss_bytes: int
    returncode: int
    cpu_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3), "cpu_s": round(self.cpu_seconds, 3),
                "peak_rss_gib": round(self.peak_rss_bytes / 2**30, 4), "returncode": self.returncode}  # fmt: skip


def _tree_rss(proc: Any) -> int:
    """Resident bytes of a process and all its descendants (those gone meanwhile count 0)."""
    import psutil

    total = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in members:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_measured(cmd: Sequence[str], log_path: Path, poll_seconds: float = 0.2) -> Stage:
    """Run ``cmd`` with output to ``log_path``; sample its tree's RSS until it exits."""
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = 0
    t0 = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT)
        try:
            watched = psutil.Process(proc.pid)
            while True:
                peak = max(peak, _tree_rss(watched))
                try:
                    proc.wait(timeout=poll_seconds)  # returns as soon as the child exits: exact wall-clock
                    break
                except subprocess.TimeoutExpired:
                    continue
        except psutil.NoSuchProcess:  # exited before the first sample
            proc.wait()
        except BaseException:  # Ctrl-C or a kill of the runner: do not leave the child behind
            proc.terminate()  # fgrpo train saves a checkpoint on SIGTERM, then exits
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if after.ru_maxrss > before.ru_maxrss:  # the max over all children grew, so this child set it (KiB on Linux)
        peak = max(peak, after.ru_maxrss * 1024)
    # CPU seconds of this child (and the descendants it waited for): unlike wall-clock, not
    # inflated by other jobs on the machine or by the process being stopped (SIGSTOP) meanwhile
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Stage(seconds, peak, proc.returncode, cpu)


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)  # a kill mid-write never leaves a half marker that would skip the run


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def materialize_toy(spec: RunSpec) -> None:
    """Write the toy test split this run is scored on (once; every run reads the same files)."""
    if spec.toy_source is None:
        return
    folder = Path(spec.eval_cfg.dataset)
    split_file = folder / f"{spec.eval_cfg.split}.jsonl"
    if split_file.is_file():
        return
    from fgrpo.config.commands import TRAINED_METHODS
    from fgrpo.data.schema import write_jsonl
    from fgrpo.data.splits import ToyTask, eval_splits

    src = spec.toy_source
    toy = ToyTask(src.toy_pool_size, src.toy_max_relevant, src.seed)
    examples, train = eval_splits(src.dataset, src.split, limit=src.limit, fitted=src.method in TRAINED_METHODS,
                                  skip_invalid=src.skip_invalid_rows, toy=toy)  # fmt: skip
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if spec.eval_cfg.split != "train":  # popularity/sasrec/gru4rec fit on it
        write_jsonl(train, tmp / "train.jsonl")
    write_jsonl(examples, tmp / f"{spec.eval_cfg.split}.jsonl")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def _fgrpo(command: str, config_file: Path) -> list[str]:
    return [sys.executable, "-m", "fgrpo", command, "--config", str(config_file)]


def run_one(spec: RunSpec, poll_seconds: float = 0.2) -> dict[str, Any]:
    """Execute one run (train/sft stage(s) if any, then eval) and write its ``metrics.json``."""
    if spec.done:
        return json.loads(spec.marker.read_text())
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "method": spec.method, "kind": spec.kind, "seed": spec.seed, "producer": spec.producer,
        "budget": spec.budget(), "run_dir": str(spec.run_dir), "config_digest": spec.digest(),
    }  # fmt: skip
    train_phase: dict[str, Any] | None = None  # the training's measured totals (train_phase.json)
    if stages := spec.train_stages():
        phase_file = spec.run_dir / "train_phase.json"
        model_dirs = [Path(c.output_dir) / "model" for _, c, _ in stages]
        trained = json.loads(phase_file.read_text()) if phase_file.is_file() else None
        if trained and (trained.get("config_digest") is None or trained["config_digest"] in spec.digests("train")) and all((d / "config.json").is_file() for d in model_dirs):
            train_phase = trained  # trained before an interruption: only re-evaluate
        else:
            if spec.warm_start is not None and not (spec.warm_start / "config.json").is_file():
                raise RunFailed(f"{spec.method} seed {spec.seed}: warm start {spec.warm_start} does not exist (its run failed?)")
            done: list[Stage] = []
            for (command, train_cfg, stem), model_dir in zip(stages, model_dirs, strict=True):
                shutil.rmtree(train_cfg.output_dir, ignore_errors=True)  # a partial run starts over: clean timings
                config_file = spec.run_dir / f"{stem}.yaml"
                save_config(train_cfg, config_file)
                log = spec.run_dir / f"{stem}.log"
                stage = run_measured(_fgrpo(command, config_file), log, poll_seconds)
                if stage.returncode != 0 or not (model_dir / "config.json").is_file():
                    raise RunFailed(f"{spec.method} seed {spec.seed}: fgrpo {command} exited {stage.returncode} "
                                    f"without {model_dir}; log {log}:\n{_tail(log)}")  # fmt: skip
                if (Path(train_cfg.output_dir) / "stopped_early.json").is_file():  # max_time: not the budgeted run
                    raise RunFailed(f"{spec.method} seed {spec.seed}: fgrpo {command} stopped early by max_time "
                                    f"({Path(train_cfg.output_dir) / 'stopped_early.json'}); not counted as finished")  # fmt: skip
                done.append(stage)
            # decoupled_sft trains its two models one after the other: their times add up
            total = Stage(sum(p.seconds for p in done), max(p.peak_rss_bytes for p in done), 0, sum(p.cpu_seconds for p in done))
            train_phase = {**total.as_dict(), "config_digest": spec.digest("train")}
            _write_json_atomic(phase_file, train_phase)
    materialize_toy(spec)
    shutil.rmtree(spec.eval_cfg.output_dir, ignore_errors=True)
    config_file = spec.run_dir / "eval.yaml"
    save_config(spec.eval_cfg, config_file)
    log = spec.run_dir / "eval.log"
    stage = run_measured(_fgrpo("eval", config_file), log, poll_seconds)
    metrics_file = Path(spec.eval_cfg.output_dir) / "metrics.json"
    if stage.returncode != 0 or not metrics_file.is_file():
        raise RunFailed(f"{spec.method} seed {spec.seed}: fgrpo eval exited {stage.returncode}; log {log}:\n{_tail(log)}")
    eval_phase = stage.as_dict()
    train_s = train_phase["seconds"] if train_phase else 0.0
    train_cpu = (train_phase or {}).get("cpu_s")  # None in a train_phase.json written before CPU was measured
    record.update({
        "train_s": train_phase["seconds"] if train_phase else None,
        "train_peak_rss_gib": train_phase["peak_rss_gib"] if train_phase else None,
        "eval_s": eval_phase["seconds"],
        "eval_peak_rss_gib": eval_phase["peak_rss_gib"],
        "wall_clock_s": round(train_s + eval_phase["seconds"], 3),
        "train_cpu_s": train_cpu,
        "eval_cpu_s": eval_phase["cpu_s"],
        "cpu_s": round((train_cpu or 0.0) + eval_phase["cpu_s"], 3),
        "peak_rss_gib": max(eval_phase["peak_rss_gib"], train_phase["peak_rss_gib"] if train_phase else 0.0),
        "metrics": json.loads(metrics_file.read_text()),
    })
    _write_json_atomic(spec.marker, record)
    return record


def _stage_record(stage: Stage, metrics_file: Path) -> dict[str, Any]:
    """The timing and metrics fields of a record whose only stage is ``fgrpo eval``."""
    e = stage.as_dict()
    return {"train_s": None, "train_peak_rss_gib": None, "eval_s": e["seconds"], "eval_peak_rss_gib": e["peak_rss_gib"],
            "wall_clock_s": e["seconds"], "train_cpu_s": None, "eval_cpu_s": e["cpu_s"], "cpu_s": e["cpu_s"],
            "peak_rss_gib": e["peak_rss_gib"], "metrics": json.loads(metrics_file.read_text())}  # fmt: skip


def run_extra(spec: RunSpec, name: str, poll_seconds: float = 0.2) -> dict[str, Any]:
    """Evaluate a finished run on extra dataset ``name`` (the same model: :mod:`.extra`) and
    write that evaluation's ``metrics.json`` under ``spec.extra_dir(name)``."""
    folder = spec.extra_dir(name)
    marker = folder / "metrics.json"
    if spec.extra_done(name):
        return json.loads(marker.read_text())
    if not spec.done:
        raise RunFailed(f"{spec.method} seed {spec.seed}: extra evaluation '{name}' needs the run itself finished first")
    ev = with_saved_fit(spec.extra_evals[name], spec.eval_cfg)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(ev.output_dir, ignore_errors=True)
    config_file = folder / "eval.yaml"
    save_config(ev, config_file)
    log = folder / "eval.log"
    stage = run_measured(_fgrpo("eval", config_file), log, poll_seconds)
    metrics_file = Path(ev.output_dir) / "metrics.json"
    if stage.returncode != 0 or not metrics_file.is_file():
        raise RunFailed(f"{spec.method} seed {spec.seed}: fgrpo eval on '{name}' exited {stage.returncode}; log {log}:\n{_tail(log)}")
    record = {
        "method": spec.method, "kind": spec.kind, "seed": spec.seed, "producer": spec.producer, "extra_eval": name,
        "budget": spec.budget(), "run_dir": str(folder), "config_digest": spec.extra_digest(name), **_stage_record(stage, metrics_file),
    }  # fmt: skip
    _write_json_atomic(marker, record)
    return record


def check_extras(specs: Sequence[RunSpec], echo: Callable[[str], None] = print) -> None:
    """Refuse (ConfigError) an extra dataset with an item the main one lacks, before anything runs."""
    for spec in specs:  # the toy task's shared split is the main folder of its runs
        if any(not spec.extra_done(n) for n in spec.extra_evals):
            materialize_toy(spec)
    for (main, extra, split), n_items in check_extra_items(specs).items():
        echo(f"extra dataset {extra} ({split}): its {n_items:,} items are all in {main}")


def run_compare(cfg: CompareConfig, echo: Callable[[str], None] = print) -> CompareOutcome:
    """Run every (method, seed) not done yet and its extra evaluations, then write the
    results and the plots."""
    specs = expand_runs(cfg)
    check_extras(specs, echo)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "experiment.yaml")
    outcome = CompareOutcome({})
    # SIGTERM (a scheduler, `kill`) becomes KeyboardInterrupt, so run_measured stops the running
    # child too instead of leaving it orphaned; restored on the way out
    previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() else None
    try:
        _run_all(cfg, specs, outcome, echo)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    outcome.files = write_results(cfg, specs, outcome)
    return outcome


def report_compare(cfg: CompareConfig) -> CompareOutcome:
    """Write the results and plots from the runs finished so far; run nothing (a look at a
    comparison still running elsewhere, or at one stopped half-way)."""
    specs = expand_runs(cfg)
    outcome = CompareOutcome({(s.method, s.seed): json.loads(s.marker.read_text()) for s in specs if s.done})
    for s in specs:
        for name in s.extra_evals:
            if s.extra_done(name):
                outcome.extra_records.setdefault(name, {})[(s.method, s.seed)] = json.loads((s.extra_dir(name) / "metrics.json").read_text())
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    outcome.files = write_results(cfg, specs, outcome)
    return outcome


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _run_all(cfg: CompareConfig, specs: Sequence[RunSpec], outcome: CompareOutcome, echo: Callable[[str], None]) -> None:
    out = Path(cfg.output_dir)
    def mine(s: RunSpec) -> bool:  # this process's run (only_seeds)
        return cfg.only_seeds is None or s.seed in cfg.only_seeds

    done, others = sum(s.done for s in specs), sum(not s.done and not mine(s) for s in specs)
    elsewhere = f", {others} left to other processes (only_seeds)" if others else ""
    echo(f"compare: {len(specs)} runs, {done} already done{elsewhere} -> {out}")
    t0, ran = time.monotonic(), 0
    for i, spec in enumerate(specs, start=1):
        head = f"[{i}/{len(specs)}] {spec.method} seed {spec.seed}"
        if ran:  # the stages to go (runs and extra evaluations) at the mean wall clock of those run so far (a rough guide)
            own = [s for s in specs[i - 1 :] if mine(s)]
            left = sum(int(not s.done) + sum(not s.extra_done(n) for n in s.extra_evals) for s in own)
            head += f" (ETA {clock_text((time.monotonic() - t0) / ran * left)})"
        if spec.done:
            outcome.records[(spec.method, spec.seed)] = json.loads(spec.marker.read_text())
            echo(f"{head}: done before, skipped")
        if not mine(spec):  # another process's seed: its finished results are read, nothing is run
            for name in spec.extra_evals:
                if spec.extra_done(name):
                    outcome.extra_records.setdefault(name, {})[(spec.method, spec.seed)] = json.loads((spec.extra_dir(name) / "metrics.json").read_text())
            if not spec.done:
                echo(f"{head}: not in only_seeds {cfg.only_seeds}: left to another process")
            continue
        if not spec.done:
            trained = (spec.run_dir / "train_phase.json").is_file()  # interrupted between training and eval
            echo(f"{head}: running ({'trained before; evaluating only' if trained else budget_text(spec.budget())})")
            ran += 1  # finished or failed, it took its time
            try:
                rec = run_one(spec, cfg.poll_seconds)
            except RunFailed as e:
                outcome.failures.append(str(e).splitlines()[0])
                echo(f"{head}: FAILED: {e}")
                if cfg.stop_on_failure:
                    break
                continue
            outcome.records[(spec.method, spec.seed)] = rec
            ndcg = rec["metrics"].get("NDCG@5", math.nan)
            echo(f"{head}: {rec['wall_clock_s']:.1f} s, peak RSS {rec['peak_rss_gib']:.2f} GiB, test NDCG@5 {ndcg:.3f}")
        extras_ran, ok = _run_extras(spec, outcome, head, cfg.poll_seconds, echo)
        ran += extras_ran
        if not ok and cfg.stop_on_failure:
            break


def _run_extras(spec: RunSpec, outcome: CompareOutcome, head: str, poll_seconds: float, echo: Callable[[str], None]) -> tuple[int, bool]:
    """The finished run's extra evaluations not done yet: how many ran, and False when one failed."""
    ok, ran = True, 0
    for name in spec.extra_evals:
        records = outcome.extra_records.setdefault(name, {})
        if spec.extra_done(name):
            records[(spec.method, spec.seed)] = json.loads((spec.extra_dir(name) / "metrics.json").read_text())
            echo(f"{head} on '{name}': done before, skipped")
            continue
        echo(f"{head} on '{name}': running")
        ran += 1
        try:
            rec = run_extra(spec, name, poll_seconds)
        except RunFailed as e:
            outcome.failures.append(str(e).splitlines()[0])
            echo(f"{head} on '{name}': FAILED: {e}")
            ok = False
            continue
        records[(spec.method, spec.seed)] = rec
        ndcg = rec["metrics"].get("NDCG@5", math.nan)
        echo(f"{head} on '{name}': {rec['wall_clock_s']:.1f} s, peak RSS {rec['peak_rss_gib']:.2f} GiB, NDCG@5 {ndcg:.3f}")
    return ran, ok


