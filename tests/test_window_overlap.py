"""scripts/check_window_overlap.py on hand-made rows: every share counted by hand."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts/check_window_overlap.py"


def _load():
    spec = importlib.util.spec_from_file_location("check_window_overlap", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(user, hist, target, pool):
    return {"id": f"{user}-{len(hist)}", "relevance": {target: 1}, "candidates": [{"id": c} for c in pool],
            "meta": {"user": user, "history_ids": hist}}


def test_overlap_counts_pairs_windows_transitions_and_popularity():
    mod = _load()
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
