"""A model card (README.md) for every model folder fgrpo writes: data, config, metrics."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml


def write_model_card(folder: Path, cfg: Any, training: str, metrics: dict[str, Any] | None = None) -> None:
    config = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    lines = [
        "---",
        "library_name: transformers",
        "tags: [fgrpo, ranking, recommendation, retrieval]",
        "---",
        f"# {Path(folder).parent.name or 'fgrpo model'}",
        "",
        f"Trained with fgrpo: {training}.",
        "",
        "Output format: `<SLATE>[i] [j] ...</SLATE><RANK>[i] > [j] ...</RANK>` over a numbered",
        "candidate pool; load with `fgrpo.Ranker.from_pretrained(folder)`.",
        "",
        f"- base model: `{config.get('model')}`",
        f"- data: `{config.get('dataset')}`",
        "",
        "## Config",
        "```yaml",
        yaml.safe_dump(config, sort_keys=False).rstrip(),
        "```",
    ]
    if metrics:
        lines += ["", "## Metrics", "```json", json.dumps(metrics, indent=1), "```"]
    (Path(folder) / "README.md").write_text("\n".join(lines) + "\n")
