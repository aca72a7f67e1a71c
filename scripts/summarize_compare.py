"""A compact markdown table of an `fgrpo compare` results.json, for docs/results.md.

    python scripts/summarize_compare.py runs/compare_ml100k_idtiny/results.json \
        --keys NDCG@1,NDCG@3,NDCG@5,Hit@1 --pair fgrpo:grpo --pair fgrpo:sft

Each cell is the mean over the method's seeds ± the half-width of its 95% CI (Student's t,
as in results.md). ``--pair A:B`` adds the per-seed paired difference A - B (the same seed
means the same warm start, so pairing removes the warm start's share of the seed noise).
``--dataset NAME`` reads the same table from the compare's extra dataset NAME (``extra_evals``)
instead of its main evaluation:

    python scripts/summarize_compare.py runs/compare_lastfm/results.json --dataset sdpo --pair fgrpo:grpo
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fgrpo.experiments.stats import mean_ci95, paired_differences


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and 95% CI half-width (Student's t, the comparison's own; 0 for one value)."""
    mean, half = mean_ci95(values)
    return mean, half or 0.0


def cell(values: list[float]) -> str:
    mean, half = mean_ci(values)
    return f"{mean:.3f}" if len(values) < 2 else f"{mean:.3f} ± {half:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--keys", default="NDCG@1,NDCG@3,NDCG@5,Hit@1")
    ap.add_argument("--pair", action="append", default=[], help="A:B, the paired per-seed difference A - B")
    ap.add_argument("--coverage", action="store_true", help="also: per method and seed, the share of examples whose relevant item is inside the written slate")
    ap.add_argument("--dataset", default=None, help="an extra dataset of the compare (its extra_evals name); default: the main evaluation")
    args = ap.parse_args()
    res = json.loads(args.results.read_text())
    eval_dir = "eval"  # where each run's metrics.json is, under runs/<method>/seed<k>/
    if args.dataset is not None:
        extras = res.get("extra_evals") or {}
        if args.dataset not in extras:
            ap.error(f"{args.results} has no extra dataset {args.dataset!r} (it has: {', '.join(extras) or 'none'})")
        res, eval_dir = extras[args.dataset], f"extra/{args.dataset}/eval"
    keys = args.keys.split(",")
    print("| method | type | n | " + " | ".join(keys) + " | valid |")
    print("|---|---|---:|" + "---:|" * (len(keys) + 1))
    for name, m in res["methods"].items():
        if not m.get("n"):
            print(f"| {name} | {m['type']} | 0 | " + " | ".join("not run" for _ in keys) + " | |")
            continue
        valid = m["metrics"].get("format/valid_rate", {}).get("values", [1.0])
        cells = [cell(m["metrics"][k]["values"]) for k in keys]
        print(f"| {name} | {m['type']} | {m['n']} | " + " | ".join(cells) + f" | {sum(valid) / len(valid):.0%} |")
    if args.coverage:  # 1 - errors@5/slate_miss_count / relevant items, from each run's eval/metrics.json
        print("\nSlate coverage (share of the relevant items inside the slate), per seed:")
        for name, m in res["methods"].items():
            runs = [args.results.parent / "runs" / name / f"seed{seed}" / eval_dir / "metrics.json" for seed in m.get("seeds", [])]
            cov = [1 - d["errors@5/slate_miss_count"] / d.get("errors@5/relevant", d["num_examples"]) for d in (json.loads(r.read_text()) for r in runs if r.is_file())
                   if "errors@5/slate_miss_count" in d]  # fmt: skip
            if cov and m["type"] != "scorer":
                print(f"- {name}: {cell(cov)} (per seed: {', '.join(f'{c:.3f}' for c in cov)})")
    for pair in args.pair:
        a, b = pair.split(":")
        ma, mb = res["methods"][a], res["methods"][b]
        common = [s for s in ma["seeds"] if s in mb["seeds"]]
        print(f"\nPaired {a} - {b} over seeds {common}:")
        for k in keys:
            va = dict(zip(ma["seeds"], ma["metrics"][k]["values"], strict=True))
            vb = dict(zip(mb["seeds"], mb["metrics"][k]["values"], strict=True))
            _, diffs = paired_differences(va, vb)
            mean, half = mean_ci(diffs)
            print(f"- {k}: {mean:+.3f} ± {half:.3f} (per seed: {', '.join(f'{d:+.3f}' for d in diffs)})")


if __name__ == "__main__":
    main()
