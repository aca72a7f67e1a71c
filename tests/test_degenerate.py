"""Degenerate results are flagged: one ranking for every pool, scores tied within every
pool, no valid output; on hand-made predictions, then through `fgrpo eval`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fgrpo.data.schema import Candidate, Example
from fgrpo.evaluation.degenerate import (
    degenerate_warnings,
    most_common_ranking,
    tied_pools,
    warnings_markdown,
)
from fgrpo.evaluation.evaluate import prediction_with_ids

REPO = Path(__file__).resolve().parents[1]


def row(ranking: list[int], valid: bool = True, scores: list[float | None] | None = None) -> dict:
    r = {"id": "x", "slate": ranking, "ranking": ranking, "slate_valid": valid, "rank_valid": valid}
    return r if scores is None else {**r, "scores": scores}


def test_most_common_ranking_counts_only_written_ones() -> None:
    assert most_common_ranking([[1, 2], [], [1, 2], [2, 1]]) == ([1, 2], 2, 3)
    assert most_common_ranking([[], []]) == ([], 0, 0)


def test_tied_pools() -> None:
    assert tied_pools([[0.0, 0.0, 0.0], [1.0, 0.0], [None, None], [3.0]]) == 2  # a one-candidate pool is no tie


def test_the_same_ranking_everywhere_is_flagged() -> None:
    preds = [row([1, 2, 3, 4, 5]) for _ in range(19)] + [row([2, 1, 3, 4, 5])]
    (warning,) = degenerate_warnings(preds)
    assert warning.startswith("the same ranking [1] > [2] > [3] > [4] > [5] for 95% of the examples (19 of 20)")
    assert degenerate_warnings(preds[:17] + [row([3, 1]), row([4, 1]), row([5, 1])]) == []  # 17 of 20 < 90%


def test_varied_rankings_and_one_example_are_not_flagged() -> None:
    assert degenerate_warnings([row([1, 2]), row([2, 1]), row([3, 1])]) == []
    assert degenerate_warnings([row([1, 2])]) == []
    assert degenerate_warnings([]) == []


def test_no_valid_output_is_flagged() -> None:
    preds = [row([], valid=False) for _ in range(4)]
    (warning,) = degenerate_warnings(preds)
    assert warning.startswith("0% valid outputs: none of the 4 answers")
    assert degenerate_warnings([row([], valid=False), row([2, 1]), row([1, 2])]) == []  # 2 of 3 valid


def test_tied_scores_in_every_pool_are_flagged() -> None:
    preds = [row([1, 2, 3], scores=[0.0, 0.0, 0.0]), row([1, 2, 3], scores=[None, None, None])]
    warnings = degenerate_warnings(preds)
    assert len(warnings) == 2  # the pool order is also one ranking for every example
    assert warnings[1].startswith("the scores are all equal within 100% of the pools (2 of 2)")
    assert degenerate_warnings([row([1, 2], scores=[2.0, 1.0]), row([2, 1], scores=[0.0, 3.0])]) == []


def test_warnings_markdown() -> None:
    assert warnings_markdown([]) == ""
    assert warnings_markdown(["a", "b"]) == "\n## Warnings\n\n- a\n- b\n"


def test_prediction_with_ids() -> None:
    ex = Example(id="q1", query="q", candidates=[Candidate("p7", "a"), Candidate("p2", "b"), Candidate("p9", "c")],
                 relevance={"p2": 1})
    out = prediction_with_ids({"id": "q1", "slate": [3, 2], "ranking": [2], "relevant": [2]}, ex)
    assert out["candidate_ids"] == ["p7", "p2", "p9"]
    assert (out["slate_ids"], out["ranking_ids"], out["relevant_ids"]) == (["p9", "p2"], ["p2"], ["p2"])


def test_eval_flags_popularity_on_pools_of_unseen_ids(tmp_path: Path) -> None:
    """QA-like pools (every passage id new): popularity scores them all 0 and ranks in pool order."""
    data = tmp_path / "qa"
    data.mkdir()
    for split, n in (("train", 6), ("test", 5)):
        with (data / f"{split}.jsonl").open("w") as fh:
            for i in range(n):
                cands = [{"id": f"{split}{i}-p{j}", "text": f"passage {j}"} for j in range(4)]
                fh.write(json.dumps({"id": f"{split}{i}", "query": "q?", "candidates": cands,
                                     "relevance": {f"{split}{i}-p{(i + 1) % 4}": 1}}) + "\n")
    out = tmp_path / "eval"
    proc = subprocess.run([sys.executable, "-m", "fgrpo", "eval", "method=popularity", f"dataset={data}",
                           f"output_dir={out}", "max_slate=3", "max_rank=2"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "warning: the scores are all equal within 100% of the pools (5 of 5)" in proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert any("scores are all equal" in w for w in metrics["warnings"])
    assert "## Warnings" in (out / "metrics.md").read_text()
    first = json.loads((out / "predictions.jsonl").read_text().splitlines()[0])
    assert first["id"] == "test0" and first["candidate_ids"][0] == "test0-p0" and first["scores"] == [0.0] * 4
    assert first["ranking_ids"] == ["test0-p0", "test0-p1"]
