"""The writer against its own scorer: where an id-tiny slate writer loses what its backbone knows.

The scorer ranks each pool by the backbone's next-item logits after the history (the
pretrained model folder, `fgrpo pretrain-items`; several folders: their mean-rank fusion, the
teacher of `teacher_models`); the writer is an `fgrpo eval` of the model
trained from it (its predictions.jsonl). Per split, paired over the same users:
- NDCG@5 and Hit@1 of both, and writer − scorer with its 95% t interval (fgrpo.experiments.stats.mean_ci95);
- how often the writer's first ranked item is the scorer's top item;
- the median training count (how often an item is a training target) of the target, of the
  scorer's top item and of the writer's: a writer that prefers more popular items than its
  scorer does loses where the targets are rarer (docs/results.md, "sixth round");
- both metrics by bins of the target's training count.

    python scripts/writer_vs_scorer.py --backbone runs/sasinit/pretrain/model --dataset runs/main/data \
        --valid runs/sasinit/eval_sft_valid/predictions.jsonl --test runs/sasinit/eval_sft_test/predictions.jsonl
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from fgrpo.experiments.stats import mean_ci95

BINS = ((0, 20), (20, 100), (100, 300), (300, None))  # training count of the target


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean of b − a and the half-width of its 95% t interval (0 for one pair)."""
    mean, half = mean_ci95([y - x for x, y in zip(a, b, strict=True)])
    return mean, half or 0.0


def by_bins(counts: Sequence[int], values: Sequence[float]) -> list[tuple[str, int, float]]:
    """(bin label, examples in it, mean value) per :data:`BINS` of the target's training count."""
    out = []
    for lo, hi in BINS:
        idx = [i for i, c in enumerate(counts) if c >= lo and (hi is None or c < hi)]
        label = f"[{lo}, {hi})" if hi is not None else f">= {lo}"
        out.append((label, len(idx), sum(values[i] for i in idx) / len(idx) if idx else math.nan))
    return out


def main() -> None:
    import torch

    from fgrpo.commands.sft import filler_order, load_teachers
    from fgrpo.data.splits import read_splits
    from fgrpo.evaluation.metrics import per_example_metrics
    from fgrpo.models.loading import load_trained

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", required=True, nargs="+",
                    help="the pretrained id-tiny model folder (the scorer); several: their mean-rank fusion, the teacher "
                         "of `fgrpo sft teacher_models=[...]` (the first plays the starting model; the others may be scorer.pt files)")  # fmt: skip
    ap.add_argument("--dataset", required=True, help="the dataset folder both were evaluated on")
    ap.add_argument("--valid", type=Path, help="the writer's predictions.jsonl on valid")
    ap.add_argument("--test", type=Path, help="the writer's predictions.jsonl on test")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tokenizer = load_trained(args.backbone[0])
    wanted = {k: p for k, p in (("valid", args.valid), ("test", args.test)) if p is not None}
    splits = read_splits(args.dataset, ("train", *wanted), announce=False, skip_invalid=False)
    teachers = load_teachers(args.backbone[1:], tokenizer, "float32", splits["train"])
    scorer = filler_order("model", [], model, tokenizer, teachers=teachers)
    count = collections.Counter(c for ex in splits["train"] for c, g in ex.relevance.items() if g > 0)
    for split, path in wanted.items():
        examples = splits[split]
        rows = {r["id"]: r for r in map(json.loads, path.open(encoding="utf-8"))}
        missing = [ex.id for ex in examples if ex.id not in rows]
        if missing:
            raise SystemExit(f"{path}: no prediction for {len(missing)} {split} examples (first: {missing[0]})")
        scorer.prefetch(examples)
        order = [scorer(ex) for ex in examples]
        written = [rows[ex.id]["ranking"] for ex in examples]
        grades = [ex.grades() for ex in examples]
        s, w = per_example_metrics([o[:5] for o in order], grades, (1, 5)), per_example_metrics(written, grades, (1, 5))
        n = len(examples)
        print(f"## {split} ({n} examples)")
        for m in ("NDCG@5", "Hit@1"):
            mean, half = paired(s[m], w[m])
            print(f"{m}: scorer {sum(s[m]) / n:.4f}, writer {sum(w[m]) / n:.4f}, writer − scorer {mean:+.4f} ± {half:.4f}")
        agree = sum(bool(r) and r[0] == o[0] for r, o in zip(written, order, strict=True)) / n
        item = [[c.id for c in ex.candidates] for ex in examples]
        target = [count[next(c for c, g in ex.relevance.items() if g > 0)] for ex in examples]
        top_s = [count[item[i][o[0] - 1]] for i, o in enumerate(order)]
        top_w = [count[item[i][r[0] - 1]] for i, r in enumerate(written) if r]
        print(f"writer's first = scorer's top: {agree:.3f}; median training count: target {statistics.median(target)}, "
              f"scorer's top {statistics.median(top_s)}, writer's first {statistics.median(top_w)}")
        print("| target's training count | examples | scorer NDCG@5 | writer NDCG@5 |\n|---|---:|---:|---:|")
        for (label, k, sv), (_, _, wv) in zip(by_bins(target, s["NDCG@5"]), by_bins(target, w["NDCG@5"]), strict=True):
            print(f"| {label} | {k} | {sv:.3f} | {wv:.3f} |")
        print()


if __name__ == "__main__":
    main()
