"""Per-seed differences of a compare's slate writers against the 5-seed SASRec / GRU4Rec test
runs (docs/results/baselines_ml100k/test_runs.json), mean ± 95% CI (Student t), seed i vs seed i.

    python scripts/vs_baselines.py docs/results/ml100k_onepass/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fgrpo.experiments.stats import mean_ci95

BASELINES = Path(__file__).resolve().parents[1] / "docs" / "results" / "baselines_ml100k" / "test_runs.json"


def main(results: str) -> None:
    methods = json.loads(Path(results).read_text())["methods"]
    runs = json.loads(BASELINES.read_text())
    for key in ("NDCG@5", "Hit@1"):
        for name in ("sft", "fgrpo", "grpo"):
            values = methods[name]["metrics"][key]["values"]
            for base in ("sasrec", "gru4rec"):
                diff = [v - runs[f"{base}-seed{s}"][key] for s, v in zip(methods[name]["seeds"], values, strict=True)]
                mean, half = mean_ci95(diff)
                print(f"{key} {name} - {base}: {mean:+.3f} ± {half or 0:.3f} (per seed: {', '.join(f'{d:+.3f}' for d in diff)})")


if __name__ == "__main__":
    main(sys.argv[1])
