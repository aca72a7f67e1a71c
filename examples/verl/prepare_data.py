"""An fgrpo dataset folder -> verl's parquet files (train.parquet, valid.parquet).

    python examples/verl/prepare_data.py runs/ml100k data/verl/ml100k

Run it in an environment with pyarrow (verl's, or fgrpo's with the [trl] extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

from fgrpo.config.commands import TrainConfig
from fgrpo.data.splits import read_splits
from fgrpo.integrations.verl import write_verl_parquet


def main(dataset: str, out: str) -> None:
    cfg = TrainConfig()  # fgrpo train's max_slate / max_rank: the parser's limits named in the prompt
    Path(out).mkdir(parents=True, exist_ok=True)
    splits = read_splits(dataset, ["train", "valid"], skip_invalid=False)
    for name, examples in splits.items():
        n = write_verl_parquet(examples, str(Path(out) / f"{name}.parquet"), cfg.max_slate, cfg.max_rank, name)
        print(f"{name}: {n} rows -> {Path(out) / f'{name}.parquet'}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: prepare_data.py DATASET_FOLDER OUT_FOLDER")
    main(sys.argv[1], sys.argv[2])
