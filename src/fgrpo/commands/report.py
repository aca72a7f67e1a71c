"""``fgrpo report FOLDER``: one self-contained HTML page of a run or a comparison.

find (what FOLDER holds: an eval's metrics.json + predictions.jsonl, a training run's
metrics.jsonl, a compare's results.json) -> read (the examples' texts from the dataset the
eval's config.yaml names; the training curves of the evaluated model's run) -> render
(:mod:`fgrpo.experiments.page`) -> write (``FOLDER/report.html`` unless ``output`` is set).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

from fgrpo.config.commands import ReportConfig
from fgrpo.data.schema import DataError, Example
from fgrpo.evaluation.metrics import metric_keys
from fgrpo.experiments import page as P


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a file (a torn last line, from a killed run, is skipped)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def read_config(folder: Path, name: str = "config.yaml") -> dict[str, Any]:
    path = folder / name
    if not path.is_file():
        return {}
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def eval_examples(cfg: dict[str, Any]) -> tuple[dict[str, Example], str]:
    """The scored split's examples by id, from the dataset an eval's config names, and a
    note ('' when read; else why the page shows ids only)."""
    from fgrpo.data.splits import ToyTask, eval_splits

    dataset, split = cfg.get("dataset"), cfg.get("split", "test")
    if not dataset:
        return {}, "the eval's config.yaml names no dataset: candidates are shown by id"
    try:
        toy = ToyTask(int(cfg.get("toy_pool_size", 8)), int(cfg.get("toy_max_relevant", 3)), int(cfg.get("seed", 0)))
        examples, _ = eval_splits(str(dataset), str(split), limit=cfg.get("limit"), fitted=False,
                                  skip_invalid=bool(cfg.get("skip_invalid_rows", False)), toy=toy)  # fmt: skip
    except (OSError, DataError, ValueError) as e:
        return {}, f"the dataset {dataset} could not be read ({e}): candidates are shown by id"
    return {ex.id: ex for ex in examples}, ""


def training_dir(cfg: dict[str, Any]) -> Path | None:
    """The run folder that wrote the evaluated model (``RUN/model`` -> ``RUN``) when it holds metrics.jsonl."""
    model = cfg.get("model")
    if not model or str(model).startswith("builtin:") or cfg.get("method", "model") not in ("model", "two_step"):
        return None
    run = Path(str(model)).parent
    return run if (run / "metrics.jsonl").is_file() else None


def curves_sections(run: Path, title: str = "Learning and cost") -> list[P.Section]:
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if "step" in r]
    notes = [r["note"] for r in read_jsonl(run / "metrics.jsonl") if "note" in r]
    imgs = P.learning_plots(rows)
    body = "".join(imgs) or "<p>no step rows in metrics.jsonl</p>"
    body = f'<p class="note">from <code>{P.esc(run / "metrics.jsonl")}</code> ({len(rows)} rows)</p>' + body
    if notes:
        body += "<details><summary>notes of the run</summary><ul>" + "".join(f"<li>{P.esc(n)}</li>" for n in notes) + "</ul></details>"
    return [P.Section(title, body, "curves")]


def eval_sections(folder: Path, max_examples: int, label: str = "") -> tuple[list[P.Section], list[str]]:
    """(metrics, breakdown, plots of the model's run, predictions; the warnings) of an eval folder."""
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    cfg = read_config(folder)
    ks = [int(k) for k in cfg.get("ks", [1, 3, 5])]
    k = max(ks)
    warnings = list(metrics.get("warnings") or [])
    preds_file = folder / "predictions.jsonl"
    preds = read_jsonl(preds_file) if preds_file.is_file() else []
    examples, note = eval_examples(cfg) if preds else ({}, "")
    where = f"{cfg.get('method', 'model')} {'(' + str(cfg.get('model')) + ')' if cfg.get('method', 'model') in ('model', 'zeroshot') else ''}"
    sections = [P.Section(f"Metrics{label}", f'<p class="note">{P.esc(where)} on the {P.esc(cfg.get("split", "test"))} split of '
                          f"<code>{P.esc(cfg.get('dataset'))}</code>; ± is the half-width of the 95% interval over "
                          f"examples.</p>" + P.metrics_table(metrics, [*metric_keys(ks), "format/valid_rate"]), "metrics")]
    analysis = P.pooled_errors(preds, examples, k)
    if analysis is not None:
        sections.append(P.Section(f"Where the relevant candidates were lost{label}", P.errors_table(analysis), "errors"))
    run = training_dir(cfg)
    if run is not None:
        sections += curves_sections(run)
    if preds:
        body = (f'<p class="note">{P.esc(note)}</p>' if note else "") + P.predictions_section(preds[:max_examples], examples, k, len(preds))
        sections.append(P.Section(f"Predictions{label}", body, "predictions"))
    return sections, warnings


def compare_sections(folder: Path, max_examples: int) -> tuple[list[P.Section], list[str]]:
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    keys = results.get("metric_keys") or [*metric_keys(), "format/valid_rate"]
    sections = [P.Section("Metrics", P.compare_table(results.get("methods") or {}, keys), "metrics")]
    pngs = sorted(folder.glob("*.png")) + sorted((folder / "curves").glob("*.png"))
    if pngs:
        sections.append(P.Section("Learning and cost", "".join(P.png_file_img(p.read_bytes(), p.stem) for p in pngs), "curves"))
    warnings = [f"failed run: {f}" for f in results.get("failures") or []]
    seen: set[str] = set()
    runs_csv = folder / "runs.csv"
    rows = list(csv.DictReader(runs_csv.open(encoding="utf-8"))) if runs_csv.is_file() else []
    for row in rows:  # the first finished seed of each method: its predictions
        if row.get("status") != "done" or row["method"] in seen:
            continue
        seen.add(row["method"])
        eval_dir = Path(read_config(Path(row["run_dir"]), "eval.yaml").get("output_dir") or Path(row["run_dir"]) / "eval")
        if (eval_dir / "metrics.json").is_file():
            more, warned = eval_sections(eval_dir, max_examples, f": {row['method']} seed {row['seed']}")
            sections += [s for s in more if s.title.startswith(("Predictions", "Where"))]
            warnings += [f"{row['method']} seed {row['seed']}: {w}" for w in warned]
    return sections, warnings


def run_report(cfg: ReportConfig) -> Path:
    """Write the page; returns its path. A folder with none of the files is a FileNotFoundError naming them."""
    folder = Path(cfg.folder)
    if (folder / "results.json").is_file():
        kind, (sections, warnings) = "comparison", compare_sections(folder, cfg.max_examples)
    elif (folder / "metrics.json").is_file():
        kind, (sections, warnings) = "evaluation", eval_sections(folder, cfg.max_examples)
    elif (folder / "metrics.jsonl").is_file():
        kind, sections, warnings = "training run", curves_sections(folder), []
        stopped = folder / "stopped_early.json"
        if stopped.is_file():
            record = json.loads(stopped.read_text())
            warnings.append(f"stopped early by max_time at step {record.get('step')} of {record.get('max_steps')}; "
                            "continue it with --resume")
        card = folder / "model" / "README.md"
        if card.is_file():
            sections.append(P.Section("Model card", f"<pre>{P.esc(card.read_text(encoding='utf-8'))}</pre>", "card"))
    else:
        raise FileNotFoundError(f"{folder}: no results.json (compare), metrics.json (eval) or metrics.jsonl (train, sft) to report")
    if warnings:
        sections.insert(0, P.Section("Warnings", P.warnings_html(warnings), "warnings"))
    page = P.Page(f"fgrpo report: {folder.name or folder}", f"{kind} in {folder.resolve()}", sections)
    out = Path(cfg.output) if cfg.output else folder / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(P.render(page), encoding="utf-8")
    return out
