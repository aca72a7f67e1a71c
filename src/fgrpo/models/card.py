"""A model card (README.md) for every model folder fgrpo writes, ready for the Hugging Face
hub (``huggingface-cli upload`` or ``model.push_to_hub``): YAML front matter in the hub's
metadata keys (library, pipeline, base model, tags, datasets, metrics), then what the
model was trained on, what it scored while training, the answer format and how to use it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

CARD_METRICS = ["ndcg", "recall", "mrr"]  # the hub's metric ids of what fgrpo eval reports


def dataset_summary(dataset: str | None) -> tuple[str, list[str]]:
    """(the hub ``datasets`` name, lines saying what the data was) of a config's ``dataset``:
    the folder's manifest.json (name, task, counts) when it has one, else its split files'
    line counts; the builtin toy task says so."""
    if not dataset:
        return "unknown", ["- data: not recorded"]
    if dataset == "toy":
        return "fgrpo-toy", ["- data: fgrpo's built-in synthetic toy task (select the marked words, rank the `**` one first)"]
    folder = Path(dataset)
    lines = [f"- data folder: `{dataset}`"]
    name = folder.name or "dataset"
    manifest = folder / "manifest.json"
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            m = {}
        name = str(m.get("dataset") or name)
        if m.get("task"):
            lines.append(f"- task: `{m['task']}`")
        if isinstance(m.get("counts"), dict):
            lines.append("- examples: " + ", ".join(f"{k} {v}" for k, v in m["counts"].items()))
        if m.get("pool_size"):
            lines.append(f"- candidates per pool: {m['pool_size']}")
        lines.append(f"- built by `fgrpo prepare dataset={name}` (manifest.json: inputs' hashes and options)")
    else:
        counts = {s: _lines(folder / f"{s}.jsonl") for s in ("train", "valid", "test") if (folder / f"{s}.jsonl").is_file()}
        if counts:
            lines.append("- examples: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return name, lines


def _lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def format_lines(answer: Mapping[str, Any] | None) -> list[str]:
    """The answer format of ``fgrpo.json`` in words."""
    lines = [
        "The model answers a numbered candidate pool with one completion:",
        "",
        "```",
        "<SLATE>[4] [11] [2] [7]</SLATE><RANK>[11] > [4]</RANK>",
        "```",
        "",
        "the slate is the candidates it selects (a set), the ranking orders its best ones.",
    ]
    if answer:
        labels = "one token per item" if answer.get("labels") == "item_tokens" else "candidate numbers `[k]`"
        lines += [
            "",
            f"- slate of at most {answer.get('max_slate')} candidates, ranking of at most {answer.get('max_rank')}",
            f"- prompt style: `{answer.get('prompt_style')}`; items named by {labels}",
            f"- completion length: {answer.get('max_new_tokens')} new tokens",
            "- recorded in `fgrpo.json`, which `fgrpo eval`, `fgrpo rank` and `Ranker.from_pretrained` read",
        ]
    return lines


def model_card(cfg: Any, training: str, metrics: Mapping[str, Any] | None = None,
               answer: Mapping[str, Any] | None = None, title: str = "fgrpo model") -> str:  # fmt: skip
    """The card's text: front matter, data, metrics, format, usage, config."""
    config = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    base = str(config.get("model") or "")
    dataset_name, data_lines = dataset_summary(config.get("dataset"))
    meta: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["fgrpo", "ranking", "recommendation", "retrieval", "slate-generation"],
        "datasets": [dataset_name],
        "metrics": CARD_METRICS,
    }
    if base and not base.startswith("builtin:") and not Path(base).exists():
        meta["base_model"] = base  # a hub id
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", f"# {title}", "",
             f"Trained with fgrpo: {training}.", "", "## Data", "",
             f"- base model: `{base}`", *data_lines, "", "## Metrics", ""]  # fmt: skip
    if metrics:
        lines += ["Last logged values of the training run (valid/*: greedy decoding on the valid split;",
                  "reward/*: the mean rollout reward of the step):", "", "| metric | value |", "|---|---:|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    else:
        lines.append("None recorded while training; `fgrpo eval model=THIS_FOLDER dataset=...` writes them (NDCG, Recall, Hit, MRR @k with 95% intervals).")
    lines += ["", "## Answer format", "", *format_lines(answer), "", "## Use", "", "```python",
              "from fgrpo import Ranker", "ranker = Ranker.from_pretrained(\"THIS_FOLDER\")",
              "ranker.rank(\"a query\", [(\"p1\", \"first passage\"), (\"p2\", \"second passage\")])", "```", "",
              "or `fgrpo rank --model THIS_FOLDER --input examples.jsonl --output rankings.jsonl`.", "",
              "## Config", "", "```yaml", yaml.safe_dump(config, sort_keys=False).rstrip(), "```"]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_model_card(folder: Path, cfg: Any, training: str, metrics: dict[str, Any] | None = None,
                     answer: Mapping[str, Any] | None = None) -> None:  # fmt: skip
    """``folder/README.md``; ``answer``: the folder's fgrpo.json record (the format section)."""
    (Path(folder) / "README.md").write_text(model_card(cfg, training, metrics, answer, Path(folder).parent.name or "fgrpo model"))
