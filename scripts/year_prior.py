"""Does the one side feature every MovieLens title carries, its release year, add to a ranking?

ML-100K's test targets are newer films than its training targets (docs/results.md, "sixth
round"), and SASRec sees item ids only. This script adds a release-year prior to one model's
written order and reports the result on valid and test, so the weight is chosen on valid:

    score(c) = -position(c) + beta * p_user(era of c)

``position`` is the candidate's place in the model's written order (ranking, then the rest of
its slate; unwritten candidates share the mean of the places left, as in
scripts/fuse_rankings.py). The era is "recent" (released in or after ``--recent``, default 1997,
the last full year before ML-100K's ratings end) or "older"; ``p_user`` is the share of the
user's history items of that era. The year is read from the title's trailing "(YYYY)".

    python scripts/year_prior.py --dataset runs/main/data \\
      --valid runs/sasinit/sasrec_valid/predictions.jsonl --test runs/sasinit/sasrec_test/predictions.jsonl

Prints, per beta of ``--betas``: NDCG@5 and Hit@1 on valid and test, and how often the
target is recent against the negatives.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from fuse_rankings import positions, written_order  # scripts/ is this script's sys.path[0]

from fgrpo.data.splits import read_splits
from fgrpo.evaluation.metrics import per_example_metrics
from fgrpo.format.items import history_ids

YEAR = re.compile(r"\((\d{4})\)\s*$")


def year(title: str) -> int | None:
    """The trailing "(YYYY)" of a MovieLens title, or None."""
    m = YEAR.search(title)
    return int(m.group(1)) if m else None


def reranked(order: list[int], recent: list[bool], share_recent: float, beta: float) -> list[int]:
    """Candidates 1..len(recent) sorted by -position + beta * the user's share of their era
    (ties by candidate number)."""
    pos = positions(order, len(recent))
    score = {c: -p + beta * (share_recent if recent[c - 1] else 1 - share_recent) for c, p in pos.items()}
    return sorted(score, key=lambda c: (-score[c], c))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True, type=Path, help="the dataset folder (train/valid/test.jsonl)")
    ap.add_argument("--valid", required=True, type=Path, help="the model's predictions.jsonl on valid")
    ap.add_argument("--test", required=True, type=Path, help="the model's predictions.jsonl on test")
    ap.add_argument("--recent", type=int, default=1997, help="first release year counted as recent")
    ap.add_argument("--betas", default="0,1,1.5,2,3,5", help="prior weights, comma-separated (below 1 a prior never overturns a place)")
    args = ap.parse_args()
    splits = read_splits(str(args.dataset), ("train", "valid", "test"), announce=False, skip_invalid=False)
    title = {c.id: c.text for ex in splits["train"] for c in ex.candidates}
    for split in ("valid", "test"):
        title.update({c.id: c.text for ex in splits[split] for c in ex.candidates})
    betas = [float(b) for b in args.betas.split(",")]
    table: dict[float, list[float]] = {b: [] for b in betas}
    for split, path in (("valid", args.valid), ("test", args.test)):
        rows = {r["id"]: r for r in (json.loads(line) for line in path.open(encoding="utf-8") if line.strip())}
        examples = splits[split]
        if missing := [ex.id for ex in examples if ex.id not in rows]:
            raise SystemExit(f"{path}: no prediction for {len(missing)} {split} examples (first: {missing[0]})")
        target_recent = negative_recent = negatives = 0
        recent, shares = [], []
        for ex in examples:
            flags = [(year(c.text) or 0) >= args.recent for c in ex.candidates]
            hist = [(year(title.get(h, "")) or 0) >= args.recent for h in history_ids(ex)]
            recent.append(flags)
            shares.append(sum(hist) / len(hist) if hist else 0.5)
            for c, flag in zip(ex.candidates, flags, strict=True):
                if ex.relevance.get(c.id, 0) > 0:
                    target_recent += flag
                else:
                    negative_recent += flag
                    negatives += 1
        grades = [ex.grades() for ex in examples]
        for b in betas:
            orders = [reranked(written_order(rows[ex.id]), f, s, b)[:5] for ex, f, s in zip(examples, recent, shares, strict=True)]
            m = per_example_metrics(orders, grades, (1, 5))
            table[b] += [sum(m["NDCG@5"]) / len(examples), sum(m["Hit@1"]) / len(examples)]
        print(f"{split}: target recent {target_recent / len(examples):.3f}, negatives recent {negative_recent / negatives:.3f}")
    print("| beta | valid NDCG@5 | valid Hit@1 | test NDCG@5 | test Hit@1 |\n|---:|---:|---:|---:|---:|")
    for b, v in table.items():
        print(f"| {b:g} | " + " | ".join(f"{x:.4f}" for x in v) + " |")


if __name__ == "__main__":
    main()
