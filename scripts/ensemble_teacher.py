"""How good the ensemble teacher of ``teacher_models`` is: each backbone as a scorer, and
their mean-rank fusion, the exact order `fgrpo sft filler_policy=model teacher_models=[...]`
distils (fgrpo.commands.sft.filler_order; the first folder plays the starting model, whose
order breaks ties). A distilled writer can at best match its teacher, so this is its ceiling.
Teachers after the first may also be SASRec/GRU4Rec fits (a ``scorer.pt`` of `fgrpo eval`).

    python scripts/ensemble_teacher.py --dataset runs/main/data runs/sasinit_ps/seed{0,1,2,3,4}/pretrain/model
    python scripts/ensemble_teacher.py --dataset runs/main/data runs/sasinit_ps/seed{0,1,2,3,4}/pretrain/model \
      runs/sasinit_ps/seed{0,1,2,3,4}/sasrec_valid/scorer.pt

Prints NDCG@5 and Hit@1 on valid and test: each teacher, their mean, and the fusion, with
the fusion − mean-teacher difference paired over the teachers (mean ± 95% t interval).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fgrpo.commands.sft import FusedOrder, filler_order, load_teachers
from fgrpo.data.splits import read_splits
from fgrpo.evaluation.metrics import per_example_metrics
from fgrpo.experiments.stats import format_mean_ci, mean_ci95
from fgrpo.models.loading import load_model, load_tokenizer

METRICS = ("NDCG@5", "Hit@1")


def score(order, examples: list) -> dict[str, float]:  # noqa: ANN001 - a FillerOrder
    """Mean NDCG@5 and Hit@1 of ``order``'s pool orders."""
    rankings = [order(ex) for ex in examples]
    grades = [[ex.relevance.get(c.id, 0) for c in ex.candidates] for ex in examples]
    values = per_example_metrics(rankings, grades, (1, 5))
    return {m: sum(values[m]) / len(values[m]) for m in METRICS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("teachers", nargs="+", type=Path,
                    help="the starting item-token model folder, then teachers: model folders or scorer.pt files")
    ap.add_argument("--dataset", required=True, type=Path, help="the `fgrpo prepare` folder")
    ap.add_argument("--splits", default="valid,test", help="splits scored, comma-separated")
    args = ap.parse_args()
    names = args.splits.split(",")
    splits = read_splits(str(args.dataset), ["train", *names], announce=False, skip_invalid=False)
    tok = load_tokenizer(str(args.teachers[0]))
    first = load_model(str(args.teachers[0])).eval()
    others = load_teachers([str(p) for p in args.teachers[1:]], tok, "float32", splits["train"])
    orders = [filler_order("model", [], first, tok), *others]
    fusion = FusedOrder(orders)  # what filler_order("model", ..., teachers=others) builds
    for name in names:
        exs = splits[name]
        fusion.prefetch(exs)  # every order, batched
        alone = [score(order, exs) for order in orders]
        fused = score(fusion, exs)
        print(f"{name} ({len(exs)} examples)")
        for path, s in zip(args.teachers, alone, strict=True):
            print(f"  {path}: " + ", ".join(f"{m} {s[m]:.4f}" for m in METRICS))
        for m in METRICS:
            each = [s[m] for s in alone]
            gain = format_mean_ci(*mean_ci95([fused[m] - v for v in each]))
            print(f"  {m}: teachers {format_mean_ci(*mean_ci95(each))}, fused {fused[m]:.4f}, fused − teacher {gain}")


if __name__ == "__main__":
    main()
