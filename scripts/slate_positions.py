"""Where the target lands in written slates: slate[0] / rank[0] hit rates, coverage and the
histogram of the first relevant item's slate position, from an `fgrpo eval` output folder.

    python scripts/slate_positions.py runs/x/eval_sft data/ml100k/valid.jsonl
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path


def main(eval_dir: str, split_file: str) -> None:
    examples = {}
    for line in Path(split_file).read_text().splitlines():
        row = json.loads(line)
        examples[row["id"]] = row
    preds = [json.loads(line) for line in (Path(eval_dir) / "predictions.jsonl").read_text().splitlines()]
    first_slate = first_rank = covered = 0
    position: collections.Counter[int] = collections.Counter()
    for p in preds:
        ex = examples[p["id"]]
        ids = [c["id"] for c in ex["candidates"]]
        relevant = {ids.index(k) + 1 for k, g in ex["relevance"].items() if g > 0}
        slate, ranking = p["slate"], p["ranking"]
        first_slate += bool(slate) and slate[0] in relevant
        first_rank += bool(ranking) and ranking[0] in relevant
        covered += any(k in relevant for k in slate)
        position[next((i for i, k in enumerate(slate) if k in relevant), -1)] += 1
    n = max(1, len(preds))
    m = json.loads((Path(eval_dir) / "metrics.json").read_text())
    print(f"NDCG@5 {m['NDCG@5']:.4f} Hit@1 {m['Hit@1']:.4f} Hit@5 {m['Hit@5']:.4f} | slate[0] hit {first_slate / n:.3f} "
          f"rank[0] hit {first_rank / n:.3f} target in slate {covered / n:.3f}")
    print("first relevant slate position (-1: not in the slate):", sorted(position.items()))


if __name__ == "__main__":
    main(*sys.argv[1:3])
