"""Are two run folders' outputs the same, less timing fields? The check behind a refactor's
"byte-identical" claim: every metrics.jsonl / metrics.json / summary.json / predictions.jsonl
under BEFORE must equal the same file under AFTER, once keys that hold wall-clock time or memory
are dropped (checkpoints are skipped).

    bash scripts/same_outputs.sh BEFORE_CHECKOUT AFTER_CHECKOUT DATASET OUT   # runs both, then this
    python scripts/same_outputs.py BEFORE_DIR AFTER_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TIMING = ("time", "_s", "seconds", "per_s", "elapsed", "rss", "memory", "eta", "wall")


def strip(obj: Any) -> Any:
    """``obj`` without the keys whose name says time or memory, at every depth."""
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if not any(t in k.lower() for t in TIMING)}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def records(path: Path) -> list[Any]:
    lines = path.read_text(encoding="utf-8").splitlines() if path.suffix == ".jsonl" else [path.read_text(encoding="utf-8")]
    return [strip(json.loads(line)) for line in lines if line.strip()]


def differences(before: Path, after: Path) -> list[str]:
    out = []
    for f in sorted(before.rglob("*.json*")):
        if f.suffix not in (".json", ".jsonl") or "checkpoints" in f.parts:
            continue
        g = after / f.relative_to(before)
        if not g.is_file():
            out.append(f"missing: {g}")
            continue
        a, b = records(f), records(g)
        if len(a) != len(b):
            out.append(f"{f.relative_to(before)}: {len(a)} vs {len(b)} records")
            continue
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                keys = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k)) if isinstance(x, dict) and isinstance(y, dict) else []
                out.append(f"{f.relative_to(before)} record {i}: {keys[:8]}")
                break
    return out


if __name__ == "__main__":
    found = differences(Path(sys.argv[1]), Path(sys.argv[2]))
    print("\n".join(found) if found else "identical (less timing fields)")
    sys.exit(1 if found else 0)
