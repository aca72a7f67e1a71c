"""Small hyperparameter search for the SASRec and GRU4Rec baselines on a dataset's valid split.

Every configuration trains on ``train.jsonl`` (users mode unless ``--train-on windows``) with
early stopping on the valid NDCG@5 of ``valid.jsonl`` (the same pool-ranking metric as the
results tables; the test split is never read), seed 0. Prints a table, writes every run
(config, best epoch, best valid NDCG@5 / Hit@1, seconds, the whole valid curve) to a JSON
file and plots the valid curves. Resumable: runs already in the JSON file are skipped.

    PYTHONPATH=src nice -n 19 python scripts/tune_sequential.py --dataset /work/runs/ml100k \
        --out docs/results/baselines_ml100k

``--summarize-test DIR ...`` instead reads the ``metrics.json`` of ``fgrpo eval`` runs
(``DIR/<method>-seed<k>/metrics.json``) and prints NDCG@5 / Hit@1 mean ± 95% CI (Student t
over seeds) per method.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

# SASRec: the paper's width (64) and twice it, 1-2 blocks, dropout 0.2 (the paper's ML-1M
# value) and 0.5 (its value for the sparse sets; ML-100K is small), lr 1e-3 (the paper) and
# 3e-3. GRU4Rec: hidden 64/128, one layer, dropout 0.1/0.3, lr 1e-3/3e-3 (full factorial).
GRID: dict[str, list[dict[str, float]]] = {
    "sasrec": [
        {"hidden": 64, "blocks": 2, "dropout": 0.2, "lr": 1e-3},
        {"hidden": 64, "blocks": 2, "dropout": 0.2, "lr": 3e-3},
        {"hidden": 64, "blocks": 2, "dropout": 0.5, "lr": 1e-3},
        {"hidden": 64, "blocks": 2, "dropout": 0.5, "lr": 3e-3},
        {"hidden": 64, "blocks": 1, "dropout": 0.5, "lr": 3e-3},
        {"hidden": 128, "blocks": 2, "dropout": 0.2, "lr": 1e-3},
        {"hidden": 128, "blocks": 2, "dropout": 0.5, "lr": 1e-3},
        {"hidden": 128, "blocks": 1, "dropout": 0.5, "lr": 1e-3},
    ],
    "gru4rec": [
        {"hidden": h, "blocks": 1, "dropout": d, "lr": lr}
        for h in (64, 128) for d in (0.1, 0.3) for lr in (1e-3, 3e-3)
    ],
}  # fmt: skip

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def t_ci(values: list[float]) -> float:
    """Half-width of the Student-t 95% confidence interval of the mean."""
    n = len(values)
    if n < 2:
        return 0.0
    return T975.get(n - 1, 1.96) * statistics.stdev(values) / math.sqrt(n)


def key(model: str, cfg: dict) -> str:
    return f"{model} h{cfg['hidden']} b{cfg['blocks']} d{cfg['dropout']} lr{cfg['lr']:g}"


def tune(args: argparse.Namespace) -> None:
    import torch

    from fgrpo.baselines.sequential import SeqConfig, SequentialScorer
    from fgrpo.data.schema import read_jsonl

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / args.json_name
    record = json.loads(json_path.read_text()) if json_path.is_file() else {"runs": []}
    done = {r["key"] for r in record["runs"]}
    train = read_jsonl(Path(args.dataset) / "train.jsonl")
    valid = read_jsonl(Path(args.dataset) / "valid.jsonl")
    record.update({
        "dataset": args.dataset, "split_for_selection": "valid", "num_train_rows": len(train),
        "num_valid": len(valid), "seed": 0, "train_on": args.train_on, "max_epochs": args.epochs,
        "patience": args.patience, "batch_size": args.batch_size, "max_len": args.max_len,
        "torch": torch.__version__, "threads": args.threads,
    })  # fmt: skip
    for model in args.models:
        for cfg in GRID[model]:
            k = key(model, cfg) + ("" if args.train_on == "users" else f" {args.train_on}")
            if k in done or (args.only and args.only not in k):
                continue
            seq = SeqConfig(
                **cfg, epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
                max_len=args.max_len, train_on=args.train_on, seed=0,
            )  # fmt: skip
            r = SequentialScorer(model, seq).fit(train, valid)  # type: ignore[arg-type]
            best = next(p for p in r.curve if p["epoch"] == r.best_epoch)
            row = {
                "key": k, "model": model, **cfg, "train_on": args.train_on, "best_epoch": r.best_epoch,
                "epochs_run": len(r.curve), "valid_NDCG@5": r.best_valid, "valid_Hit@1": best["valid_Hit@1"],
                "seconds": round(r.train_seconds, 1), "curve": r.curve,
            }  # fmt: skip
            record["runs"].append(row)
            json_path.write_text(json.dumps(record, indent=1))
            print(f"{k}: valid NDCG@5 {r.best_valid:.4f} at epoch {r.best_epoch}/{len(r.curve)}, {r.train_seconds:.0f} s", flush=True)
    best_by_model = {}
    for model in GRID:
        runs = [r for r in record["runs"] if r["model"] == model and r["train_on"] == "users"]
        if runs:
            best_by_model[model] = max(runs, key=lambda r: r["valid_NDCG@5"])["key"]
    record["best"] = best_by_model
    json_path.write_text(json.dumps(record, indent=1))
    print_table(record)
    plot(record, out / args.plot_name)


def print_table(record: dict) -> None:
    print("| model | hidden | blocks/layers | dropout | lr | train on | best epoch / run | valid NDCG@5 | valid Hit@1 | s |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    best = set(record.get("best", {}).values())
    for r in record["runs"]:
        mark = "**" if r["key"] in best else ""
        print(
            f"| {r['model']} | {r['hidden']} | {r['blocks']} | {r['dropout']} | {r['lr']:g} | {r['train_on']} | "
            f"{r['best_epoch']} / {r['epochs_run']} | {mark}{r['valid_NDCG@5']:.4f}{mark} | {r['valid_Hit@1']:.4f} | {r['seconds']:.0f} |"
        )


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in GRID if any(r["model"] == m for r in record["runs"])]
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.2), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models, strict=True):
        for r in (r for r in record["runs"] if r["model"] == model):
            xs = [p["epoch"] for p in r["curve"] if "valid_NDCG@5" in p]
            ys = [p["valid_NDCG@5"] for p in r["curve"] if "valid_NDCG@5" in p]
            label = f"h{r['hidden']} b{r['blocks']} d{r['dropout']} lr{r['lr']:g}" + ("" if r["train_on"] == "users" else f" {r['train_on']}")
            (line,) = ax.plot(xs, ys, label=label, lw=1.2)
            ax.plot([r["best_epoch"]], [r["valid_NDCG@5"]], "o", color=line.get_color(), ms=4)
        ax.set_title(f"{model}: valid NDCG@5 per epoch (dot: restored epoch)")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("valid NDCG@5 (943 users)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def summarize_test(dirs: list[str]) -> None:
    rows: dict[str, list[dict]] = {}
    for d in dirs:
        for f in sorted(Path(d).glob("*/metrics.json")):
            method = f.parent.name.rsplit("-seed", 1)[0]
            rows.setdefault(method, []).append(json.loads(f.read_text()))
    print("| method | seeds | NDCG@5 (mean ± 95% CI, t) | Hit@1 (mean ± 95% CI, t) | per seed NDCG@5 | train s (mean) |")
    print("|---|---:|---:|---:|---|---:|")
    for method, ms in rows.items():
        nd = [m["NDCG@5"] for m in ms]
        h1 = [m["Hit@1"] for m in ms]
        secs = [m.get("baseline/train_seconds", float("nan")) for m in ms]
        print(
            f"| {method} | {len(ms)} | {statistics.mean(nd):.3f} ± {t_ci(nd):.3f} | {statistics.mean(h1):.3f} ± {t_ci(h1):.3f} | "
            f"{', '.join(f'{v:.3f}' for v in nd)} | {statistics.mean(secs):.0f} |"
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="/work/runs/ml100k")
    ap.add_argument("--out", default="docs/results/baselines_ml100k")
    ap.add_argument("--json-name", default="tuning.json")
    ap.add_argument("--plot-name", default="valid_curves.png")
    ap.add_argument("--models", nargs="+", default=list(GRID), choices=list(GRID))
    ap.add_argument("--train-on", default="users", choices=["users", "windows"])
    ap.add_argument("--epochs", type=int, default=200, help="max epochs")
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--only", default=None, help="run only the configurations whose key holds this text (e.g. 'lr0.001')")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--summarize-test", nargs="+", metavar="DIR")
    args = ap.parse_args(argv)
    if args.summarize_test:
        summarize_test(args.summarize_test)
        return
    start = time.perf_counter()
    tune(args)
    print(f"total {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
