"""Print a Markdown table of several `fgrpo eval` outputs: NAME=DIR ... (each DIR has metrics.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fgrpo.evaluation.metrics import format_markdown_table, metric_keys

rows = {}
for arg in sys.argv[1:]:
    name, folder = arg.split("=", 1)
    rows[name] = json.loads((Path(folder) / "metrics.json").read_text())
print(format_markdown_table(rows, metric_keys((1, 3, 5)) + ["format/valid_rate"]))
