"""Print a Markdown table of several `fgrpo eval` outputs: [--keys K1,K2] NAME=DIR ... (each DIR has metrics.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fgrpo.evaluation.metrics import format_markdown_table, metric_keys

args = sys.argv[1:]
only: list[str] | None = None
if args[:1] == ["--keys"]:
    only, args = args[1].split(","), args[2:]
rows = {}
for arg in args:
    name, folder = arg.split("=", 1)
    rows[name] = json.loads((Path(folder) / "metrics.json").read_text())
keys = metric_keys((1, 3, 5))
for values in rows.values():  # the test-sample uncertainty of NDCG@5, when eval recorded it
    if "ci95/NDCG@5" in values:
        values["NDCG@5 ±95% CI"] = values["ci95/NDCG@5"]
ci = ["NDCG@5 ±95% CI"] if any("NDCG@5 ±95% CI" in v for v in rows.values()) else []
print(format_markdown_table(rows, only or keys + ci + ["format/valid_rate"]))
