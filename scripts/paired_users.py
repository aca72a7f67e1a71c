"""The test-sample interval of a difference between two models: per-example metric of two
`fgrpo eval` runs on the same split (their predictions.jsonl), paired by example id, and the
95% interval of the mean difference over the examples (Student t, fgrpo.experiments.stats.mean_ci95; n is hundreds).

    python scripts/paired_users.py A/predictions.jsonl B/predictions.jsonl [--metric NDCG@5]

A seed-paired interval (`scripts/summarize_compare.py --pair`) measures training noise on one
fixed test set; this one measures how much the difference depends on which users happen to be
in that set, which averaging over seeds does not remove (docs/results.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fgrpo.evaluation.metrics import per_example_metrics
from fgrpo.experiments.stats import mean_ci95


def per_example(path: Path, metric: str) -> dict[str, float]:
    """Example id -> ``metric`` of its ranking, the relevant candidates graded 1 (the
    predictions keep which are relevant, not their grades: binary, as single-target pools are)."""
    name, _, k = metric.partition("@")
    if name not in ("NDCG", "Hit", "Recall", "Precision") or not k.isdigit():
        raise SystemExit(f"--metric {metric}: one of NDCG@k, Hit@k, Recall@k, Precision@k")
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    grades = [[int(n in set(r["relevant"])) for n in range(1, len(r["candidate_ids"]) + 1)] for r in rows]
    values = per_example_metrics([r["ranking"] for r in rows], grades, (int(k),))[metric]
    return {r["id"]: float(v) for r, v in zip(rows, values, strict=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path, help="predictions.jsonl of model A")
    ap.add_argument("b", type=Path, help="predictions.jsonl of model B (the same split)")
    ap.add_argument("--metric", default="NDCG@5")
    args = ap.parse_args()
    a, b = per_example(args.a, args.metric), per_example(args.b, args.metric)
    if set(a) != set(b):
        raise SystemExit(f"{args.a} and {args.b} hold different examples ({len(set(a) ^ set(b))} ids in one only)")
    n = len(a)
    mean, half = mean_ci95([a[k] - b[k] for k in a])
    print(f"{args.metric}: A {sum(a.values()) / n:.4f}, B {sum(b.values()) / n:.4f}, A - B {mean:+.4f} ± {half or 0.0:.4f} "
          f"(95%, paired over {n} examples)")


if __name__ == "__main__":
    main()
