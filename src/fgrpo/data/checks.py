"""Checks of a dataset folder before hours of training: pure functions over rows and examples.

What is checked (``fgrpo check-data``; the structural checks also run at the start of
``train``, ``sft`` and ``eval``):
    * rows: every line of each split file, as the readers read it; a bad row is a failure
      (``skip_invalid_rows=true`` would drop it: counted, the first ones shown);
    * counts per split; a required split (train, test) missing or empty is a failure;
    * duplicate ids: an example id in two splits (a leak, or two examples the prompt cache
      would confuse) and a candidate text twice in one pool (an ambiguous label): warnings;
    * histograms of pool sizes and of relevant candidates per pool; pools with more relevant
      candidates than ``max_slate`` (no slate can cover them): a warning;
    * empty queries and empty candidate texts: warnings;
    * the ``task`` of each example against the prompt styles the caller knows: an unknown
      one gets the generic prompt, a warning;
    * prompt lengths (``encode``: an example -> its prompt's token ids) against a context:
      a prompt that with ``new_tokens`` does not fit is a failure (``prompt_overflow=skip``
      would drop it: counted).

A :class:`CheckReport` holds failures, warnings and the numbers; :func:`report_text` is its
readable form. Nothing here loads a model or prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fgrpo.data.schema import (
    DataError,
    Example,
    decode_json_line,
    example_from_json,
    iter_raw_json_lines,
)

SHOW = 5  # problems of one kind quoted in a report (all are counted)
REQUIRED = ("train", "test")  # the splits a run cannot do without (valid: optional)


@dataclass
class CheckReport:
    """What :func:`check_folder` found: ``failures`` stop a run, ``warnings`` are printed."""

    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failures": self.failures,
            "warnings": self.warnings,
            "counts": self.counts,
            **self.stats,
        }


@dataclass
class RowCheck:
    """A split file read row by row: the examples that parse, and every bad row's message."""

    examples: list[Example]
    bad_rows: list[str]


def read_rows(path: Path) -> RowCheck:
    """Every row of a split file: the good examples and the message of each bad one (the
    readers' own messages, file:line:field), duplicate ids within the file included."""
    bad: list[str] = []
    examples: list[Example] = []
    first: dict[str, str] = {}
    for where, raw in iter_raw_json_lines(path):
        try:
            obj = decode_json_line(raw, where)
            if obj is None:
                continue
            ex = example_from_json(obj, where)
        except DataError as e:
            bad.append(str(e))
            continue
        if ex.id in first:
            bad.append(
                f"{where}: field 'id': duplicate example id {ex.id!r} (first at {first[ex.id]})"
            )
            continue
        first[ex.id] = where
        examples.append(ex)
    return RowCheck(examples, bad)


def _quote(items: Sequence[str], total: int | None = None) -> str:
    total = len(items) if total is None else total
    more = f" (and {total - SHOW} more)" if total > SHOW else ""
    return "; ".join(items[:SHOW]) + more


def histogram(values: Iterable[int]) -> dict[str, int]:
    """value -> how many, keys as strings in numeric order (JSON-ready)."""
    counts = Counter(values)
    return {str(k): counts[k] for k in sorted(counts)}


def _where(ex: Example, split: str) -> str:
    return ex.source or f"{split} example {ex.id!r}"


def structure_problems(
    splits: Mapping[str, list[Example]], known_tasks: Iterable[str], max_slate: int | None = None
) -> tuple[list[str], dict[str, Any]]:
    """Warnings and numbers of the structural checks (module doc) on read examples."""
    warnings: list[str] = []
    stats: dict[str, Any] = {"pool_size": {}, "relevant_per_pool": {}, "tasks": {}}
    known = set(known_tasks)
    seen: dict[str, str] = {}
    across: list[str] = []
    for split, examples in splits.items():
        stats["pool_size"][split] = histogram(ex.num_candidates for ex in examples)
        stats["relevant_per_pool"][split] = histogram(len(ex.relevant_numbers()) for ex in examples)
        stats["tasks"][split] = dict(Counter(ex.task for ex in examples).most_common())
        empty_q = [_where(ex, split) for ex in examples if not ex.query.strip()]
        empty_t = [
            f"{_where(ex, split)}: candidates[{k}]"
            for ex in examples
            for k, c in enumerate(ex.candidates)
            if not c.text.strip()
        ]
        twice = [
            _where(ex, split)
            for ex in examples
            if len({c.text.strip() for c in ex.candidates}) < ex.num_candidates
        ]
        too_many = (
            [_where(ex, split) for ex in examples if len(ex.relevant_numbers()) > max_slate]
            if max_slate
            else []
        )
        if empty_q:
            warnings.append(
                f"{split}: {len(empty_q)} example(s) with an empty query: {_quote(empty_q)}"
            )
        if empty_t:
            warnings.append(f"{split}: {len(empty_t)} empty candidate text(s): {_quote(empty_t)}")
        if twice:
            warnings.append(
                f"{split}: {len(twice)} pool(s) show one text for two candidates (the model "
                f"cannot tell them apart): {_quote(twice)}"
            )
        if too_many:
            warnings.append(
                f"{split}: {len(too_many)} pool(s) have more relevant candidates than max_slate "
                f"({max_slate}); no slate covers them: {_quote(too_many)}"
            )
        unknown = sorted({ex.task for ex in examples} - known)
        if unknown:
            warnings.append(
                f"{split}: task {', '.join(repr(t) for t in unknown)} has no prompt of its own "
                f"(known: {', '.join(sorted(known))}); it gets the generic prompt"
            )
        for ex in examples:
            if ex.id in seen and seen[ex.id] != split:
                across.append(f"{ex.id!r} ({seen[ex.id]}, {split})")
            seen.setdefault(ex.id, split)
    if across:
        warnings.append(
            f"{len(across)} example id(s) appear in two splits (a leak between them?): {_quote(across)}"
        )
    stats["duplicate_ids_across_splits"] = len(across)
    return warnings, stats


def prompt_problems(
    splits: Mapping[str, list[Example]],
    encode: Callable[[Example], list[int]],
    context: int | None,
    new_tokens: int,
) -> tuple[list[str], dict[str, Any]]:
    """Failures (prompts that, with ``new_tokens``, exceed ``context``) and the lengths per split."""
    failures: list[str] = []
    stats: dict[str, Any] = {"context": context, "new_tokens": new_tokens}
    for split, examples in splits.items():
        lengths = [len(encode(ex)) for ex in examples]
        over = [
            f"{_where(ex, split)} ({n} tokens)"
            for ex, n in zip(examples, lengths, strict=True)
            if context is not None and n + new_tokens > context
        ]
        stats[split] = {
            "min": min(lengths, default=None),
            "max": max(lengths, default=None),
            "mean": round(sum(lengths) / len(lengths), 1) if lengths else None,
            "overflow": len(over),
        }
        if over:
            failures.append(
                f"{split}: {len(over)} of {len(examples)} prompt(s) + {new_tokens} new tokens exceed "
                f"the context of {context} tokens (prompt_overflow=skip would drop them): {_quote(over)}"
            )
    return failures, stats


def check_folder(
    folder: str | Path,
    names: Sequence[str] = ("train", "valid", "test"),
    *,
    known_tasks: Iterable[str],
    max_slate: int | None = None,
    encode: Callable[[Example], list[int]] | None = None,
    context: int | None = None,
    new_tokens: int = 0,
) -> CheckReport:
    """Every check of the module doc on the split files of ``folder`` (``encode``: with a
    model; without one the prompt lengths are not checked)."""
    folder = Path(folder)
    report = CheckReport()
    if not folder.is_dir():
        report.failures.append(f"{folder}: dataset folder not found")
        return report
    splits: dict[str, list[Example]] = {}
    skips: dict[str, int] = {}
    for name in names:
        path = folder / f"{name}.jsonl"
        if not path.is_file():
            (report.failures if name in REQUIRED else report.warnings).append(
                f"{path}: file not found"
                + ("" if name in REQUIRED else " (optional: no in-training evaluation)")
            )
            report.counts[name] = 0
            continue
        rows = read_rows(path)
        splits[name] = rows.examples
        report.counts[name] = len(rows.examples)
        skips[name] = len(rows.bad_rows)
        if rows.bad_rows:
            report.failures.append(
                f"{path}: {len(rows.bad_rows)} bad row(s) (skip_invalid_rows=true would drop them): "
                + _quote(rows.bad_rows)
            )
        if not rows.examples and name in REQUIRED:
            report.failures.append(f"{path}: no examples")
    warnings, stats = structure_problems(splits, known_tasks, max_slate)
    report.warnings.extend(warnings)
    report.stats.update(stats)
    report.stats["skip_rules"] = {"skip_invalid_rows": skips}
    if encode is not None:
        failures, lengths = prompt_problems(splits, encode, context, new_tokens)
        report.failures.extend(failures)
        report.stats["prompt_tokens"] = lengths
        report.stats["skip_rules"]["prompt_overflow"] = {
            s: v["overflow"] for s, v in lengths.items() if isinstance(v, dict)
        }
    return report


def report_text(report: CheckReport, folder: str | Path) -> str:
    """The readable report: counts, histograms, prompt lengths, what the skip rules drop,
    then the warnings and failures."""
    lines = [f"data check of {folder}"]
    lines.append("  examples: " + ", ".join(f"{s} {n}" for s, n in report.counts.items()))
    for key, label in (("pool_size", "pool size"), ("relevant_per_pool", "relevant per pool")):
        for split, hist in report.stats.get(key, {}).items():
            lines.append(f"  {label} ({split}): " + ", ".join(f"{k}: {v}" for k, v in hist.items()))
    for split, tasks in report.stats.get("tasks", {}).items():
        lines.append(f"  task ({split}): " + ", ".join(f"{t}: {n}" for t, n in tasks.items()))
    tokens = report.stats.get("prompt_tokens")
    if tokens:
        lines.append(f"  prompt tokens (context {tokens['context']}, {tokens['new_tokens']} new):")
        for split, v in tokens.items():
            if isinstance(v, dict):
                lines.append(
                    f"    {split}: min {v['min']}, mean {v['mean']}, max {v['max']}, over {v['overflow']}"
                )
    for rule, per_split in report.stats.get("skip_rules", {}).items():
        value = "true" if rule == "skip_invalid_rows" else "skip"
        lines.append(
            f"  {rule}={value} would drop: " + ", ".join(f"{s} {n}" for s, n in per_split.items())
        )
    lines += [f"warning: {w}" for w in report.warnings]
    lines += [f"FAILED: {f}" for f in report.failures]
    lines.append("ok" if report.ok else f"{len(report.failures)} failure(s)")
    return "\n".join(lines)
