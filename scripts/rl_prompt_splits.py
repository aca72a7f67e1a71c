"""Dataset folders for the RL-prompt experiments of docs/results.md ("What was tried this round").

    python scripts/rl_prompt_splits.py sample runs/main/data /tmp/trainsample   # 943 random train rows as valid.jsonl
    python scripts/rl_prompt_splits.py holdout runs/main/data /tmp/ho --k 3     # pre/ (train minus each user's last k) and rl/ (those k)

Then `fgrpo eval ... dataset=/tmp/trainsample split=valid` scores models on training prompts;
pretrain-items and sft on /tmp/ho/pre and train on /tmp/ho/rl give the held-out-prompt RL run.
The other split files are symlinked from the source folder.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from collections import defaultdict
from pathlib import Path


def link_rest(src: Path, dst: Path, names: tuple[str, ...]) -> None:
    for name in names:
        if (src / name).exists() and not (dst / name).exists():
            os.symlink((src / name).resolve(), dst / name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["sample", "holdout"])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--n", type=int, default=943, help="sample: training rows drawn")
    ap.add_argument("--k", type=int, default=3, help="holdout: each user's last k training positions held out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    lines = (a.src / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    if a.mode == "sample":
        a.dst.mkdir(parents=True, exist_ok=True)
        (a.dst / "valid.jsonl").write_text("".join(random.Random(a.seed).sample(lines, a.n)), encoding="utf-8")
        link_rest(a.src, a.dst, ("train.jsonl", "test.jsonl", "manifest.json"))
        return
    by_user: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, line in enumerate(lines):
        meta = json.loads(line)["meta"]
        by_user[meta["user"]].append((int(meta["position"]), i))
    held = {i for rows in by_user.values() for _, i in sorted(rows)[-a.k :]}
    for name, keep in (("pre", lambda i: i not in held), ("rl", lambda i: i in held)):
        out = a.dst / name
        out.mkdir(parents=True, exist_ok=True)
        (out / "train.jsonl").write_text("".join(line for i, line in enumerate(lines) if keep(i)), encoding="utf-8")
        link_rest(a.src, out, ("valid.jsonl", "test.jsonl", "manifest.json"))
    print(f"pre: {len(lines) - len(held)} rows, rl: {len(held)} rows, {len(by_user)} users")


if __name__ == "__main__":
    main()
