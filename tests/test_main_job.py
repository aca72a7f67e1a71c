"""The main job (scripts/main.sh) end to end on a small slice of MovieLens-100K: every stage
runs, every row of the final table is there and its numbers are metrics, not blanks.

The slice: 120 examples per split, a few steps of each stage; the real MovieLens-100K comes
from the recbole wheel (cached in $FGRPO_CACHE), so the test skips without it and without
network. Quality is not asserted here (a few steps learn nothing): docs/results.md has the
full run."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ml100k_available() -> bool:
    from fgrpo.data.fetch import fetch_ml100k

    try:
        fetch_ml100k()
    except Exception:  # no network and no cache: nothing to run on
        return False
    return True


@pytest.mark.slow
def test_main_job_runs_end_to_end_on_a_slice(tmp_path: Path) -> None:
    if not _ml100k_available():
        pytest.skip("MovieLens-100K is neither cached nor downloadable here")
    env = {
        **os.environ, "OUT": str(tmp_path / "main"), "MAX_EXAMPLES": "120", "PRETRAIN_STEPS": "10",
        "SFT_STEPS": "3", "RL_STEPS": "2", "TEST_LIMIT": "24", "SEQ_EXTRA": "seq_epochs=1",
    }  # fmt: skip
    out = subprocess.run(["bash", "scripts/main.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[0] == "method" and "NDCG@5" in header and "Hit@1" in header
    rows = {ln.strip("|").split("|")[0].strip(): ln for ln in lines[2:]}
    assert set(rows) == {"Random", "Popularity", "SASRec", "GRU4Rec", "SFT", "F-GRPO"}
    col = header.index("NDCG@5")
    for name, ln in rows.items():
        value = [c.strip() for c in ln.strip("|").split("|")][col]
        assert re.fullmatch(r"\d\.\d+", value), (name, value)
    assert (tmp_path / "main" / "fgrpo" / "model" / "config.json").is_file()
