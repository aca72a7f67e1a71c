"""The analysis scripts of docs/results.md on hand-made inputs, every number worked out by hand:
scripts/check_window_overlap.py and scripts/training_signals.py."""

import importlib.util
import math
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod



def _row(user, hist, target, pool):
    return {"id": f"{user}-{len(hist)}", "relevance": {target: 1}, "candidates": [{"id": c} for c in pool],
            "meta": {"user": user, "history_ids": hist}}


def test_overlap_counts_pairs_windows_transitions_and_popularity():
    mod = _load("check_window_overlap")
    train = [_row("u1", ["a", "b"], "c", ["c", "x"]), _row("u1", ["a", "b", "c"], "d", ["d", "x"]),
             _row("u2", ["b"], "c", ["c", "y"])]
    rows = [
        _row("v1", ["a", "b"], "c", ["c", "d", "y"]),  # pair seen; window seen; b->c seen; d (1) not > c (2)
        _row("v1", ["x", "c"], "d", ["d", "c", "x"]),  # window unseen; c->d seen; c (2) > d (1): one more popular
        _row("u2", ["z"], "y", ["y", "c", "d"]),       # nothing seen; y never a target: c and d more popular; u2 shared
    ]
    o = mod.overlap(train, rows, window=10)
    assert o["rows"] == 3
    assert o["pair_seen"] == 1 / 3
    assert o["window_seen"] == 1 / 3
    assert o["transition_seen"] == 2 / 3
    assert o["users_shared"] == 1
    assert o["negatives_more_popular"] == (0 + 1 + 2) / 3
    assert o["negatives"] == 2
    # a window of 1 keeps only the last item: row 2's window (c,) is then seen, as train row 2's
    assert mod.overlap(train, rows, window=1)["window_seen"] == 2 / 3



def _step(corr, groups, miss, drop, rel, zs=0.5, zr=0.0):
    return {"reward/slate": 1.0, "groups/slate_rank_corr": corr, "groups/slate_rank_corr_groups": groups,
            "groups/slate_zero_var_frac": zs, "groups/rank_zero_var_frac": zr, "adv/slate_group_std": 0.1,
            "adv/rank_group_std": 0.3, "rollout/errors@5/slate_miss_count": miss,
            "rollout/errors@5/rank_drop_count": drop, "rollout/errors@5/relevant": rel}


def test_run_signals_by_hand():
    mod = _load("training_signals")
    steps = [_step(0.5, 1, 2, 4, 10, zs=1.0), _step(float("nan"), 0, 0, 2, 10), _step(-0.1, 3, 1, 1, 20, zs=0.0)]
    s = mod.run_signals(steps, window=2)
    assert s["slate_zero_var"] == 0.5 and s["rank_zero_var"] == 0.0
    assert math.isclose(s["corr"], (0.5 * 1 - 0.1 * 3) / 4)  # weighted by the groups where it is defined
    assert math.isclose(s["corr_steps"], 2 / 3)
    assert math.isclose(s["miss_start"], 2 / 20) and math.isclose(s["drop_start"], 6 / 20)  # steps 0-1, pooled
    assert math.isclose(s["miss_end"], 1 / 30) and math.isclose(s["drop_end"], 3 / 30)  # steps 1-2
    assert math.isclose(s["adv_slate"], 0.1) and math.isclose(s["adv_rank"], 0.3)


def test_test_errors_by_hand():
    mod = _load("training_signals")
    e = mod.test_errors({"errors@5/relevant": 30, "errors@5/slate_miss_count": 3, "errors@5/rank_drop_count": 6})
    assert math.isclose(e["miss"], 0.1) and math.isclose(e["drop"], 0.2)
    assert math.isnan(mod.test_errors({})["miss"])


def test_paired_users_per_example_metric_by_hand(tmp_path):
    import json

    mod = _load("paired_users")
    rows = [{"id": "a", "ranking": [2, 1], "relevant": [1], "candidate_ids": ["x", "y", "z"]},  # at rank 2: 1/log2(3)
            {"id": "b", "ranking": [3], "relevant": [3], "candidate_ids": ["x", "y", "z"]}]     # at rank 1: 1
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = mod.per_example(path, "NDCG@5")
    assert math.isclose(got["a"], 1 / math.log2(3)) and got["b"] == 1.0
    assert mod.per_example(path, "Hit@1") == {"a": 0.0, "b": 1.0}


def test_fuse_rankings_borda_by_hand(tmp_path):
    import json

    mod = _load("fuse_rankings")
    # pool of 4; order A = 1,2 (3 and 4 share the mean of positions 2 and 3: 2.5); order B = 2,3,1
    # (4 gets position 3). Sums: 1 -> 0+2, 2 -> 1+0, 3 -> 2.5+1, 4 -> 2.5+3
    assert mod.fuse([[1, 2], [2, 3, 1]], 4) == [2, 1, 3, 4]
    assert mod.fuse([[3], [2, 3, 1]], 4) == [3, 2, 1, 4]  # [3]: 1, 2, 4 -> 2 each; sums 1: 4, 2: 2, 3: 1, 4: 5
    assert mod.fuse([[1, 2], [2, 1]], 2) == [1, 2]  # a tie (1 each) goes to the lower candidate number
    assert mod.written_order({"ranking": [3, 1], "slate": [1, 2, 3]}) == [3, 1, 2]
    rows_a = [{"id": "x", "ranking": [1, 2], "slate": [1, 2], "relevant": [2], "candidate_ids": ["a", "b", "c", "d"]}]
    rows_b = [{"id": "x", "ranking": [2, 1], "slate": [], "relevant": [2], "candidate_ids": ["a", "b", "c", "d"]}]
    pa, pb = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    pa.write_text("".join(json.dumps(r) + "\n" for r in rows_a))
    pb.write_text("".join(json.dumps(r) + "\n" for r in rows_b))
    a, b = mod.load(pa), mod.load(pb)
    assert mod.scores([a])["Hit@1"] == 0.0 and math.isclose(mod.scores([a])["NDCG@5"], 1 / math.log2(3))
    assert mod.scores([b])["Hit@1"] == 1.0
    assert mod.scores([a, b])["Hit@1"] == 0.0  # the tie 1 vs 2 goes to candidate 1
    assert mod.scores([a, b, b])["Hit@1"] == 1.0


def test_writer_vs_scorer_paired_and_bins_by_hand():
    mod = _load("writer_vs_scorer")
    mean, half = mod.paired([1.0, 0.0, 0.5], [1.0, 1.0, 0.0])  # differences 0, 1, -0.5: mean 1/6
    sd = math.sqrt(((0 - 1 / 6) ** 2 + (1 - 1 / 6) ** 2 + (-0.5 - 1 / 6) ** 2) / 2)
    assert math.isclose(mean, 1 / 6) and math.isclose(half, 4.3027 * sd / math.sqrt(3))  # t_{0.975, 2}
    bins = mod.by_bins([5, 19, 20, 150, 300, 1000], [1.0, 0.0, 0.5, 0.25, 1.0, 0.0])
    assert [(label, k) for label, k, _ in bins] == [("[0, 20)", 2), ("[20, 100)", 1), ("[100, 300)", 1), (">= 300", 2)]
    assert [v for _, _, v in bins] == [0.5, 0.5, 0.25, 0.5]


def test_year_prior_rerank_by_hand(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))  # the script imports fuse_rankings as its neighbour
    mod = _load("year_prior")
    assert mod.year("Kolya (1996)") == 1996 and mod.year("Untitled") is None
    # 4 candidates; the model wrote 2, 1 (3 and 4 share place (2 + 3) / 2 = 2.5); 3 and 4 are recent
    recent = [False, False, True, True]
    assert mod.reranked([2, 1], recent, 0.5, 0.0) == [2, 1, 3, 4]
    # a user with 3/4 recent history: old films +0.25 beta, recent +0.75 beta; beta 4: 2 -> -0+1,
    # 1 -> -1+1, 3 and 4 -> -2.5+3; so 2 (1.0), 3 and 4 (0.5, by number), 1 (0.0)
    assert mod.reranked([2, 1], recent, 0.75, 4.0) == [2, 3, 4, 1]


def test_ensemble_teacher_score_by_hand():
    """NDCG@5 and Hit@1 of a pool order: the target first scores 1 and 1; third, 1/log2(4) = 0.5 and 0."""
    from fgrpo.data.schema import Candidate, Example

    mod = _load("ensemble_teacher")
    pool = [Candidate(c, c) for c in ("a", "b", "c", "d")]
    first = Example("u-1", "q", pool, {"b": 1})
    third = Example("u-2", "q", pool, {"d": 1})
    orders = {"u-1": [2, 1, 3, 4], "u-2": [1, 2, 4, 3]}
    got = mod.score(lambda ex: orders[ex.id], [first, third])
    assert math.isclose(got["NDCG@5"], (1 + 0.5) / 2) and got["Hit@1"] == 0.5
