"""One JSON line per logged step in ``metrics.jsonl``, mirrored to TensorBoard."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


class MetricsLog:
    def __init__(self, output_dir: str | Path, tensorboard: bool = True) -> None:
        self.path = Path(output_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(output_dir) / "tensorboard"))

    def write(self, row: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        with self.path.open("a") as fh:
            fh.write(json.dumps(clean) + "\n")
        if self.writer is not None and "step" in row:
            for k, v in row.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step" and math.isfinite(v):
                    self.writer.add_scalar(k, v, row["step"])

    def keep(self, predicate: Callable[[dict[str, Any]], bool]) -> None:
        """Rewrite the file with only the lines ``predicate`` keeps (on resume: the rows the
        resumed run does not write again). Atomic: a kill leaves the old file or the new one."""
        if not self.path.is_file():
            return
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        kept = [line for line in lines if _parses(line) and predicate(json.loads(line))]  # a torn last line goes
        if len(kept) == len(lines):
            return
        tmp = self.path.with_name(f".tmp-{self.path.name}")
        with tmp.open("w") as fh:
            fh.write("".join(line + "\n" for line in kept))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self.note(f"resume: dropped {len(lines) - len(kept)} line(s) the resumed run writes again")

    def note(self, message: str) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps({"note": message}) + "\n")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _parses(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:  # the last line of a process killed while writing it
        return False
    return True


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Step rows of a metrics.jsonl (notes skipped)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        obj = json.loads(line)
        if "step" in obj:
            rows.append(obj)
    return rows
