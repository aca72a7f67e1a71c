"""How much of an evaluation split a model could have seen in training: for next-item data
prepared by `fgrpo prepare` (rows with `meta.history_ids` and one relevant candidate), count
the evaluation rows whose (last-N history, target) pair, last-N history alone, or last item ->
target transition also occur in the training split, and the users shared by both.

    python scripts/check_window_overlap.py runs/lastfm/data/train.jsonl \
        runs/lastfm/data/test.jsonl runs/lastfm_sdpo/data/test.jsonl

Written for docs/lastfm.md's question whether S-DPO's pools overlap training (a plain count;
no library does this for our row format).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


def _rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _target(row: dict) -> str:
    relevant = [k for k, v in row["relevance"].items() if v > 0]
    if len(relevant) != 1:
        raise SystemExit(f"{row.get('id')}: expected exactly one relevant candidate, got {len(relevant)}")
    return relevant[0]


def overlap(train: list[dict], rows: list[dict], window: int) -> dict[str, float]:
    """Shares of ``rows`` whose (history window, target), history window, or last -> target
    transition appear in ``train``; the count of users in both; the target's mean popularity
    rank among its pool (0 = the most frequent training target)."""
    pairs, windows, transitions = set(), set(), set()
    for r in train:
        hist = tuple(r["meta"]["history_ids"][-window:])
        pairs.add((hist, _target(r)))
        windows.add(hist)
        if hist:
            transitions.add((hist[-1], _target(r)))
    popularity = Counter(_target(r) for r in train)
    users = {r["meta"].get("user") for r in train}
    n = len(rows)
    hits = {"pair": 0, "window": 0, "transition": 0}
    more_popular, negatives = 0, 0
    for r in rows:
        hist, t = tuple(r["meta"]["history_ids"][-window:]), _target(r)
        hits["pair"] += (hist, t) in pairs
        hits["window"] += hist in windows
        hits["transition"] += bool(hist) and (hist[-1], t) in transitions
        more_popular += sum(popularity[c["id"]] > popularity[t] for c in r["candidates"] if c["id"] != t)
        negatives += len(r["candidates"]) - 1
    return {
        "rows": n,
        "pair_seen": hits["pair"] / n,
        "window_seen": hits["window"] / n,
        "transition_seen": hits["transition"] / n,
        "users_shared": len(users & {r["meta"].get("user") for r in rows}),
        "negatives_more_popular": more_popular / n,
        "negatives": negatives / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("train", type=Path, help="the training split (train.jsonl)")
    ap.add_argument("eval", type=Path, nargs="+", help="evaluation splits to check")
    ap.add_argument("--window", type=int, default=10, help="history items the models see (id-tiny: 10)")
    args = ap.parse_args()
    train = _rows(args.train)
    print("| split | rows | (window, target) in train | window in train | last -> target in train | users shared | negatives more popular than the target |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in args.eval:
        o = overlap(train, _rows(path), args.window)
        print(
            f"| {path} | {o['rows']} | {o['pair_seen']:.1%} | {o['window_seen']:.1%} | {o['transition_seen']:.1%} "
            f"| {o['users_shared']} | {o['negatives_more_popular']:.1f} of {o['negatives']:.0f} |"
        )


if __name__ == "__main__":
    main()
