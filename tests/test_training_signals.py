"""scripts/training_signals.py on hand-made step logs: every signal worked out by hand."""

import importlib.util
import math
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts/training_signals.py"


def _load():
    spec = importlib.util.spec_from_file_location("training_signals", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _step(corr, groups, miss, drop, rel, zs=0.5, zr=0.0):
    return {"reward/slate": 1.0, "groups/slate_rank_corr": corr, "groups/slate_rank_corr_groups": groups,
            "groups/slate_zero_var_frac": zs, "groups/rank_zero_var_frac": zr, "adv/slate_group_std": 0.1,
            "adv/rank_group_std": 0.3, "rollout/errors@5/slate_miss_count": miss,
            "rollout/errors@5/rank_drop_count": drop, "rollout/errors@5/relevant": rel}


def test_run_signals_by_hand():
    mod = _load()
    steps = [_step(0.5, 1, 2, 4, 10, zs=1.0), _step(float("nan"), 0, 0, 2, 10), _step(-0.1, 3, 1, 1, 20, zs=0.0)]
    s = mod.run_signals(steps, window=2)
    assert s["slate_zero_var"] == 0.5 and s["rank_zero_var"] == 0.0
    assert math.isclose(s["corr"], (0.5 * 1 - 0.1 * 3) / 4)  # weighted by the groups where it is defined
    assert math.isclose(s["corr_steps"], 2 / 3)
    assert math.isclose(s["miss_start"], 2 / 20) and math.isclose(s["drop_start"], 6 / 20)  # steps 0-1, pooled
    assert math.isclose(s["miss_end"], 1 / 30) and math.isclose(s["drop_end"], 3 / 30)  # steps 1-2
    assert math.isclose(s["adv_slate"], 0.1) and math.isclose(s["adv_rank"], 0.3)
