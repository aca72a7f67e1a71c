"""How much one model's rankings add to another's: rank fusion of `fgrpo eval` predictions.

Each model's written order (its ranking, then the rest of its slate: a scorer writes its top
10) gives every candidate a position; candidates a model did not write share the mean of the
positions left. The fused order sorts the pool by the summed positions (Borda count), ties by
candidate number. If fusing model B into model A adds no more than fusing a second seed of A
into A, B carries no ranking information that A lacks (docs/results.md, "fusion").

    python scripts/fuse_rankings.py A/predictions.jsonl B/predictions.jsonl [...] [--pool-size 20]
    python scripts/fuse_rankings.py --compare runs/compare_ml100k_onepass --methods sasrec,sft,gru4rec

The first form prints each file's NDCG@5 / Hit@1 and the fused one's, with the per-user
paired interval of fused − first. The second reads `DIR/runs/<method>/seed<k>/eval/
predictions.jsonl` for every seed and prints, for the first method A and each method B:
A_k alone, A_k ⊕ A_(k+1) (two seeds of A), A_k ⊕ B_k, and all seeds of B fused, as mean
± 95% CI over seeds and paired against A_k.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fgrpo.evaluation.metrics import per_example_metrics
from fgrpo.experiments.stats import format_mean_ci, mean_ci95

METRICS = ("NDCG@5", "Hit@1")


def load(path: Path) -> dict[str, dict]:
    """Example id -> prediction row of one predictions.jsonl."""
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    return {r["id"]: r for r in rows}


def written_order(row: dict) -> list[int]:
    """The candidates a model wrote, best first: its ranking, then the rest of its slate."""
    ranking = [int(c) for c in row.get("ranking") or []]
    return ranking + [int(c) for c in row.get("slate") or [] if int(c) not in set(ranking)]


def positions(order: list[int], pool_size: int) -> dict[int, float]:
    """Each candidate 1..pool_size's place in ``order`` (from 0); one the order leaves out
    gets the mean of the places left, len(order) .. pool_size - 1."""
    rest = (len(order) + pool_size - 1) / 2
    pos = {c: i for i, c in enumerate(order)}
    return {c: pos.get(c, rest) for c in range(1, pool_size + 1)}


def fuse(orders: list[list[int]], pool_size: int) -> list[int]:
    """Borda fusion of several orders of candidates 1..pool_size: sorted by summed
    :func:`positions`, ties by candidate number."""
    total = dict.fromkeys(range(1, pool_size + 1), 0.0)
    for order in orders:
        for c, p in positions(order, pool_size).items():
            total[c] += p
    return sorted(total, key=lambda c: (total[c], c))


def per_example(runs: list[dict[str, dict]], pool_size: int | None = None) -> dict[str, list[float]]:
    """NDCG@5 and Hit@1 per example of the fusion of ``runs`` (one run: its own order), in
    the order of the first run's examples (every run must hold the same ids)."""
    ids = list(runs[0])
    for r in runs[1:]:
        if set(r) != set(ids):
            raise SystemExit(f"the runs hold different examples ({len(set(r) ^ set(ids))} ids in one only)")
    rankings, grades = [], []
    for i in ids:
        row = runs[0][i]
        n = len(row["candidate_ids"]) if "candidate_ids" in row else pool_size
        if n is None:
            raise SystemExit("predictions without candidate_ids: pass --pool-size")
        rankings.append(fuse([written_order(r[i]) for r in runs], n) if len(runs) > 1 else written_order(row))
        grades.append([int(c in set(row["relevant"])) for c in range(1, n + 1)])
    values = per_example_metrics(rankings, grades, (1, 5))
    return {m: values[m] for m in METRICS}


def scores(runs: list[dict[str, dict]], pool_size: int | None = None) -> dict[str, float]:
    """Mean NDCG@5 and Hit@1 of :func:`per_example`."""
    return {m: sum(v) / len(v) for m, v in per_example(runs, pool_size).items()}


def _cells(values: list[float], base: list[float] | None) -> list[str]:
    """The mean ± CI cell, and the seed-paired difference to ``base`` (blank for the base)."""
    if base is None:
        return [format_mean_ci(*mean_ci95(values)), ""]
    d = [x - y for x, y in zip(values, base, strict=True)]
    diff = format_mean_ci(*mean_ci95(d))
    return [format_mean_ci(*mean_ci95(values)), f"{'+' if not diff.startswith('-') else ''}{diff} ({sum(x > 0 for x in d)} of {len(d)} > 0)"]


def compare_table(folder: Path, methods: list[str], pool_size: int | None) -> str:
    """The seed-paired fusion table of one `fgrpo compare` folder (see the module docstring)."""
    def seeds_of(method: str) -> list[int]:
        found = sorted(int(p.name[4:]) for p in (folder / "runs" / method).glob("seed*")
                       if (p / "eval" / "predictions.jsonl").is_file())
        if not found:
            raise SystemExit(f"{folder}/runs/{method}: no seed*/eval/predictions.jsonl")
        return found

    a, others = methods[0], methods[1:]
    seeds = seeds_of(a)
    runs = {m: {k: load(folder / "runs" / m / f"seed{k}" / "eval" / "predictions.jsonl") for k in seeds_of(m)} for m in methods}
    nxt = {k: seeds[(j + 1) % len(seeds)] for j, k in enumerate(seeds)}
    rows: list[tuple[str, dict[str, list[float]]]] = []

    def row(name: str, per_seed: list[list[dict[str, dict]]]) -> None:
        done: dict[tuple[int, ...], dict[str, float]] = {}  # a fusion of all seeds repeats per seed: scored once
        for r in per_seed:
            if tuple(map(id, r)) not in done:
                done[tuple(map(id, r))] = scores(r, pool_size)
        got = [done[tuple(map(id, r))] for r in per_seed]
        rows.append((name, {m: [g[m] for g in got] for m in METRICS}))

    row(f"{a}_k", [[runs[a][k]] for k in seeds])
    row(f"{a}_k ⊕ {a}_k+1 (two seeds of {a})", [[runs[a][k], runs[a][nxt[k]]] for k in seeds])
    row(f"all seeds of {a} fused", [[runs[a][j] for j in seeds]] * len(seeds))
    for b in others:
        common = [k for k in seeds if k in runs[b]]
        if common != seeds:
            raise SystemExit(f"{b} lacks seeds {sorted(set(seeds) - set(common))} of {a}")
        row(f"{b}_k", [[runs[b][k]] for k in seeds])
        row(f"{a}_k ⊕ {b}_k", [[runs[a][k], runs[b][k]] for k in seeds])
        row(f"all seeds of {b} fused", [[runs[b][j] for j in seeds]] * len(seeds))
    row(f"all seeds of {', '.join(methods)} fused", [[runs[m][j] for m in methods for j in seeds]] * len(seeds))
    base = rows[0][1]
    out = [f"{folder}, seeds {seeds}; mean ± 95% CI over seeds; 'vs {a}_k': paired by seed",
           "", "| fusion | " + " | ".join(f"{m} | {m} vs {a}_k" for m in METRICS) + " |",
           "|---|" + "---:|---:|" * len(METRICS)]
    for j, (name, vals) in enumerate(rows):
        cells = [c for m in METRICS for c in _cells(vals[m], None if j == 0 else base[m])]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="predictions.jsonl files of the same split (the first is A)")
    ap.add_argument("--compare", type=Path, help="an `fgrpo compare` output folder (instead of files)")
    ap.add_argument("--methods", default="sasrec,sft,gru4rec", help="--compare: methods, the first is A")
    ap.add_argument("--pool-size", type=int, default=None, help="candidates per pool, for predictions without candidate_ids")
    args = ap.parse_args()
    if args.compare is not None:
        print(compare_table(args.compare, args.methods.split(","), args.pool_size))
        return
    if len(args.files) < 2:
        ap.error("give at least two predictions.jsonl files, or --compare DIR")
    runs = [load(p) for p in args.files]
    for p, r in zip(args.files, runs, strict=True):
        s = scores([r], args.pool_size)
        print(f"{p}: " + ", ".join(f"{m} {s[m]:.4f}" for m in METRICS))
    fused, first = per_example(runs, args.pool_size), per_example(runs[:1], args.pool_size)
    for m in METRICS:
        d = [x - y for x, y in zip(fused[m], first[m], strict=True)]
        mean, half = mean_ci95(d)
        print(f"fused {m} {sum(fused[m]) / len(d):.4f}; fused − first {mean:+.4f} ± {half or 0.0:.4f} "
              f"(95%, paired over {len(d)} examples)")


if __name__ == "__main__":
    main()
