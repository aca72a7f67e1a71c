"""`fgrpo compare`: the interval math on hand-worked numbers, the expansion of an experiment
into (method, seed) runs, errors that name the key, memory measurement, curve reading, and
one tiny experiment end to end (files, mean ± CI cells, resume skips finished runs)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fgrpo.config import ConfigError
from fgrpo.config.commands import CompareConfig, EvalConfig, SFTConfig, TrainConfig
from fgrpo.experiments.expand import expand_runs
from fgrpo.experiments.plots import read_curves
from fgrpo.experiments.runner import (
    RunFailed,
    Stage,
    report_compare,
    run_compare,
    run_measured,
    run_one,
)
from fgrpo.experiments.spec import load_compare_config
from fgrpo.experiments.stats import (
    format_mean_ci,
    mean_ci95,
    paired_differences,
    rollouts_to_reach,
    t_quantile_975,
)

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ statistics


def test_t_quantiles_table_and_tail() -> None:
    assert t_quantile_975(1) == pytest.approx(12.7062)
    assert t_quantile_975(2) == pytest.approx(4.3027)
    assert t_quantile_975(30) == pytest.approx(2.0423)
    assert t_quantile_975(40) == pytest.approx(2.0211, abs=1e-4)  # expansion beyond the table
    assert t_quantile_975(10**6) == pytest.approx(1.95996, abs=1e-4)  # -> the normal quantile
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_t_quantiles_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats", reason="scipy is an optional cross-check here, not a dependency")
    for dof in (*range(1, 31), 31, 45, 60, 120, 500):
        assert t_quantile_975(dof) == pytest.approx(float(stats.t.ppf(0.975, dof)), abs=1e-4), dof


def test_mean_ci95_hand_worked() -> None:
    # 0.5, 0.6, 0.7: mean 0.6, sample sd 0.1, se 0.1/sqrt(3) = 0.057735, t(2) = 4.3027 -> 0.24841
    mean, half = mean_ci95([0.5, 0.6, 0.7])
    assert mean == pytest.approx(0.6) and half == pytest.approx(0.248417, abs=1e-5)
    # 1, 3: mean 2, sd sqrt(2), se 1, t(1) = 12.7062
    assert mean_ci95([1.0, 3.0]) == (pytest.approx(2.0), pytest.approx(12.7062))
    assert mean_ci95([0.4, 0.4, 0.4]) == (pytest.approx(0.4), pytest.approx(0.0))
    assert mean_ci95([0.3]) == (0.3, None)  # one run: no interval
    assert math.isnan(mean_ci95([])[0])
    assert format_mean_ci(0.5123, 0.0312) == "0.512 ± 0.031"
    assert format_mean_ci(0.5123, None) == "0.512"


def test_paired_differences_keep_common_seeds_in_order() -> None:
    seeds, diffs = paired_differences({2: 0.5, 0: 0.7, 1: 0.4}, {0: 0.6, 2: 0.25, 5: 1.0})
    assert seeds == [2, 0] and diffs == [pytest.approx(0.25), pytest.approx(0.1)]
    assert paired_differences({0: 1.0}, {1: 1.0}) == ([], [])


# ------------------------------------------------------------------ config expansion and errors

TINY_BASE = {
    "model": "builtin:tiny-llama", "tiny_hidden_size": 32, "tiny_num_layers": 1, "max_steps": 2,
    "group_size": 2, "prompts_per_step": 2, "max_new_tokens": 24, "eval_every": 1, "eval_limit": 4,
    "toy_num_train": 50, "toy_num_valid": 8, "tensorboard": False, "torch_threads": 1,
    "learning_rate": 0.001, "save_every": 10, "keep_last": 1,
}  # fmt: skip


def _write(tmp_path: Path, experiment: dict) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))
    return path


def test_expansion_sweeps_times_seeds(tmp_path: Path) -> None:
    exp = {
        "output_dir": str(tmp_path / "out"), "seeds": [0, 1, 2], "base": TINY_BASE, "eval": {"limit": 16},
        "methods": [
            {"name": "sft", "kind": "sft", "overrides": {"max_steps": 5, "slate_size": 3}},
            {"name": "fgrpo", "warm_start": "sft", "sweep": {"rank_weight": [0.5, 1, 2], "scale_by_std": [True, False]}},
            {"name": "grpo", "overrides": {"advantage_estimator": "grpo"}, "warm_start": "sft"},
            {"name": "random", "kind": "scorer"},
            {"name": "BM25", "kind": "scorer", "overrides": {"method": "bm25"}},
            {"name": "zero-shot", "kind": "model", "overrides": {"model": "some/folder"}},
        ],
    }  # fmt: skip
    cfg = load_compare_config(_write(tmp_path, exp))
    runs = expand_runs(cfg)
    count = {}
    for r in runs:
        count[r.method] = count.get(r.method, 0) + 1
    # 3 seeds for trained and seeded methods; deterministic scorers and model folders once
    assert count["sft"] == 3 and count["grpo"] == 3 and count["random"] == 3
    assert count["BM25"] == 1 and count["zero-shot"] == 1
    swept = sorted(m for m in count if m.startswith("fgrpo["))
    assert len(swept) == 6 and all(count[m] == 3 for m in swept)
    assert "fgrpo[rank_weight=0.5, scale_by_std=true]" in swept
    assert len(runs) == 3 + 18 + 3 + 3 + 1 + 1
    assert [r.seed for r in runs] == sorted(r.seed for r in runs)  # seed-major: warm starts come first
    assert len({r.run_dir for r in runs}) == len(runs)

    fg = next(r for r in runs if r.method == "fgrpo[rank_weight=2, scale_by_std=false]" and r.seed == 1)
    assert isinstance(fg.train_cfg, TrainConfig)
    assert fg.train_cfg.rank_weight == 2.0 and fg.train_cfg.scale_by_std is False and fg.train_cfg.seed == 1
    assert fg.train_cfg.max_steps == 2 and fg.train_cfg.group_size == 2  # the shared budget from base
    assert fg.warm_start == Path(cfg.output_dir) / "runs" / "sft" / "seed1" / "train" / "model"
    assert fg.train_cfg.model == str(fg.warm_start)
    assert fg.budget()["rollouts"] == 2 * 2 * 2
    sft = next(r for r in runs if r.method == "sft" and r.seed == 2)
    assert isinstance(sft.train_cfg, SFTConfig)
    assert sft.train_cfg.max_steps == 5 and sft.train_cfg.tiny_hidden_size == 32  # model keys from base, not RL steps
    assert fg.eval_cfg.method == "model" and fg.eval_cfg.model == str(fg.run_dir / "train" / "model")
    bm25 = next(r for r in runs if r.method == "BM25")
    assert bm25.eval_cfg.method == "bm25" and not bm25.producer and bm25.command is None
    rnd = [r for r in runs if r.method == "random"]
    assert [r.eval_cfg.seed for r in rnd] == [0, 1, 2]
    # every row is scored on one toy test set, written once, whatever the run's seed
    assert len({r.eval_cfg.dataset for r in runs}) == 1
    assert all(isinstance(r.eval_cfg, EvalConfig) and r.eval_cfg.limit == 16 for r in runs)


def test_nested_overrides_reach_base_and_eval(tmp_path: Path) -> None:
    exp = {"output_dir": str(tmp_path), "base": TINY_BASE, "methods": [{"name": "fgrpo"}]}
    cfg = load_compare_config(_write(tmp_path, exp), ["base.max_steps=7", "eval.limit=5", "seeds=[3]"])
    (run,) = expand_runs(cfg)
    assert run.train_cfg.max_steps == 7 and run.train_cfg.group_size == 2  # the rest of base kept
    assert run.eval_cfg.limit == 5 and run.seed == 3


def test_seed_placeholder_gives_each_seed_its_own_input(tmp_path: Path) -> None:
    exp = {"output_dir": str(tmp_path), "seeds": [0, 3], "base": TINY_BASE,
           "methods": [{"name": "sft", "kind": "sft", "overrides": {"model": "backbones/seed{seed}/model", "max_steps": 5,
                                                                "filler_policy": "model", "teacher_models": ["t/{seed}", "t/9"]}},
                       {"name": "fgrpo", "warm_start": "sft"}]}  # fmt: skip
    runs = expand_runs(load_compare_config(_write(tmp_path, exp)))
    sft = {r.seed: r for r in runs if r.method == "sft"}
    assert sft[0].train_cfg.model == "backbones/seed0/model" and sft[3].train_cfg.model == "backbones/seed3/model"
    assert sft[3].train_cfg.teacher_models == ["t/3", "t/9"]  # in lists of strings too
    fg = next(r for r in runs if r.method == "fgrpo" and r.seed == 3)
    assert fg.train_cfg.model == str(tmp_path / "runs" / "sft" / "seed3" / "train" / "model")  # the warm start, not the template


def test_fingerprint_redoes_edited_runs_and_their_dependents(tmp_path: Path) -> None:
    def digests(*overrides: str, sft_steps: int = 5) -> dict[str, str]:
        exp = {"output_dir": str(tmp_path), "seeds": [0], "base": TINY_BASE,
               "methods": [{"name": "sft", "kind": "sft", "overrides": {"max_steps": sft_steps}},
                           {"name": "fgrpo", "warm_start": "sft"}, {"name": "random", "kind": "scorer"}]}  # fmt: skip
        return {r.method: r.digest() for r in expand_runs(load_compare_config(_write(tmp_path, exp), list(overrides)))}

    plain = digests()
    assert digests("base.torch_threads=2", "eval.batch_size=4") == plain  # bookkeeping: results reused
    more_steps = digests("base.max_steps=3")
    assert more_steps["fgrpo"] != plain["fgrpo"] and more_steps["random"] == plain["random"]
    longer_sft = digests(sft_steps=6)  # the RL run's own config is unchanged, but it starts from another model
    assert longer_sft["sft"] != plain["sft"] and longer_sft["fgrpo"] != plain["fgrpo"]


def test_sft_batch_size_is_in_the_fingerprint_eval_batch_size_is_not(tmp_path: Path) -> None:
    # batch_size is two keys: SFTConfig's is the training batch (another model), EvalConfig's
    # how many prompts greedy decoding reads at once (the same answers)
    def digests(sft: dict, ev: dict) -> dict[str, str]:
        exp = {"output_dir": str(tmp_path), "seeds": [0], "base": TINY_BASE, "eval": ev,
               "methods": [{"name": "sft", "kind": "sft", "overrides": {"max_steps": 5, **sft}},
                           {"name": "fgrpo", "warm_start": "sft"}, {"name": "random", "kind": "scorer"}]}  # fmt: skip
        runs = expand_runs(load_compare_config(_write(tmp_path, exp)))
        return {r.method: r.digest() for r in runs} | {f"{r.method}/train": r.digest("train") for r in runs}

    plain = digests({"batch_size": 4}, {})
    bigger = digests({"batch_size": 8}, {})
    assert bigger["sft"] != plain["sft"] and bigger["sft/train"] != plain["sft/train"]
    assert bigger["fgrpo"] != plain["fgrpo"]  # it starts from the other SFT model
    assert bigger["random"] == plain["random"]
    assert digests({"batch_size": 4}, {"batch_size": 2, "dense_batch_size": 7}) == plain  # eval bookkeeping


def test_bookkeeping_is_marked_on_the_fields() -> None:
    from fgrpo.config import is_bookkeeping

    marked = {cls.__name__: {f.name for f in dataclasses.fields(cls) if is_bookkeeping(f)} for cls in (TrainConfig, SFTConfig, EvalConfig)}
    assert marked == {
        # max_time does not change what a finished run computes; a run it stops early is not
        # counted as finished (runner.run_one), so it needs no place in the fingerprint
        "TrainConfig": {"torch_threads", "log_every", "save_every", "keep_last", "tensorboard", "max_time"},
        "SFTConfig": {"torch_threads", "log_every", "max_time"},
        # scorer_from loads the fit a refit would give (same kind, seq keys, seed, train split:
        # SequentialScorer.load checks), so it is where the model comes from, not what it is
        "EvalConfig": {"torch_threads", "batch_size", "dense_batch_size", "log_every", "scorer_from"},
    }


def test_digest_carries_its_format_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fgrpo.experiments import digest

    exp = {"output_dir": str(tmp_path), "seeds": [0], "base": TINY_BASE, "methods": [{"name": "fgrpo"}]}
    (run,) = expand_runs(load_compare_config(_write(tmp_path, exp)))
    before = (run.digest(), run.digest("train"))
    run.marker.parent.mkdir(parents=True)
    run.marker.write_text(json.dumps({"config_digest": before[0]}))
    assert run.done
    monkeypatch.setattr(digest, "DIGEST_VERSION", digest.DIGEST_VERSION + 1)
    assert run.digest() != before[0] and run.digest("train") != before[1]
    assert not run.done  # a bump re-runs every recorded run


def test_every_kind_has_a_rule() -> None:
    from typing import get_args

    from fgrpo.config.commands import Kind
    from fgrpo.experiments.expand import KINDS

    assert set(KINDS) == set(get_args(Kind))


GOOD = {"name": "fgrpo", "kind": "train"}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"base": {**TINY_BASE, "group_sise": 4}}, "group_sise"),
        ({"base": {**TINY_BASE, "seed": 4}}, "'seed'"),
        ({"base": {**TINY_BASE, "max_rank": 12}}, "max_rank"),
        ({"methods": [{**GOOD, "overides": {}}]}, "overides"),
        ({"methods": [{**GOOD, "overrides": {"group_sise": 4}}]}, "group_sise"),
        ({"methods": [{**GOOD, "kind": "trian"}]}, "kind"),
        ({"methods": [{"kind": "train"}]}, "name"),
        ({"methods": [GOOD, GOOD]}, "name"),
        ({"methods": [{**GOOD, "sweep": {"rank_weight": 0.5}}]}, "rank_weight"),
        ({"methods": [{**GOOD, "sweep": {"rank_wieght": [1, 2]}}]}, "rank_wieght"),
        ({"methods": [{**GOOD, "warm_start": "sft"}]}, "warm_start"),
        ({"methods": [{**GOOD, "warm_start": "rnd"}, {"name": "rnd", "kind": "scorer", "overrides": {"method": "random"}}]}, "warm_start"),
        ({"methods": [{"name": "bm26", "kind": "scorer"}]}, "method"),
        ({"methods": [{"name": "zs", "kind": "model"}]}, "model"),
        ({"methods": [{**GOOD, "eval": {"limt": 3}}]}, "limt"),
        ({"eval": {"output_dir": "x"}}, "output_dir"),
        ({"seeds": []}, "seeds"),
        ({"seeds": [1, 1]}, "seeds"),
        ({"methods": []}, "methods"),
    ],
)
def test_validation_errors_name_the_key(tmp_path: Path, change: dict, needle: str) -> None:
    exp = {"output_dir": str(tmp_path), "seeds": [0], "base": TINY_BASE, "methods": [GOOD], **change}
    with pytest.raises(ConfigError) as err:
        load_compare_config(_write(tmp_path, exp))
    assert needle in str(err.value) and "experiment.yaml" in str(err.value)


def fgrpo_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fgrpo", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_cli_exit_2_on_bad_config_and_dry_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fgrpo.cli import app

    exp = _write(tmp_path, {"output_dir": str(tmp_path / "out"), "seeds": [0, 1], "base": TINY_BASE,
                            "methods": [GOOD, {"name": "random", "kind": "scorer"}]})  # fmt: skip
    bad = fgrpo_cli("compare", str(exp), "base.group_sise=3")  # the real entry point, once
    assert bad.returncode == 2 and "group_sise" in bad.stderr
    runner = CliRunner()
    dry = runner.invoke(app, ["compare", str(exp), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "4 runs" in dry.output and "fgrpo train + eval" in dry.output and "method=random" in dry.output
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    bad = runner.invoke(app, ["compare", str(exp), "methods=[{name: x, kind: trian}]"])
    assert bad.exit_code == 2 and "kind" in bad.output
    keys = runner.invoke(app, ["options", "compare"])
    assert keys.exit_code == 0 and "seeds" in keys.output and "methods" in keys.output


def test_shipped_experiments_load() -> None:
    for name in ("compare_toy.yaml", "compare_ml100k_smollm2.yaml"):
        cfg = load_compare_config(REPO / "configs" / name)
        assert isinstance(cfg, CompareConfig) and expand_runs(cfg)


# ------------------------------------------------------------------ measurement and curves


def test_peak_memory_and_wall_clock_of_a_child(tmp_path: Path) -> None:
    code = "import time; b = b'x' * (300 * 2**20); time.sleep(0.6)"  # touches 300 MiB
    phase = run_measured([sys.executable, "-c", code], tmp_path / "log.txt", poll_seconds=0.05)
    assert phase.returncode == 0
    assert phase.peak_rss_bytes > 290 * 2**20
    assert phase.seconds >= 0.6
    assert 0.05 < phase.cpu_seconds < phase.seconds  # building 300 MiB costs CPU; sleeping does not


def test_read_curves_skips_warmup_dedupes_resume_and_counts_seconds(tmp_path: Path) -> None:
    rows = [
        {"note": "launch"},
        {"phase": "sft_warmup", "step": 1, "sft/loss": 3.0, "step_time_s": 0.1},
        {"step": 0, "valid/NDCG@5": 0.1},
        {"step": 2, "reward/slate": 0.2, "reward/rank": -0.1, "step_time_s": 1.0},  # log_every 2: covers steps 1-2
        {"step": 4, "reward/slate": 0.3, "reward/rank": 0.0, "step_time_s": 1.5, "valid/NDCG@5": 0.3},
        {"step": 4, "reward/slate": 0.4, "reward/rank": 0.1, "step_time_s": 0.5, "valid/NDCG@5": 0.35},  # resumed
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    c = read_curves(path, rollouts_per_step=16)
    assert c.steps == [2, 4] and c.slate == [0.2, 0.4] and c.rank == [-0.1, 0.1]
    assert c.valid_steps == [0, 4] and c.valid_ndcg == [0.1, 0.35]
    assert c.valid_seconds == [0.0, pytest.approx(2 * 1.0 + 2 * 0.5)]


def test_a_run_stopped_by_max_time_is_not_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = {"output_dir": str(tmp_path / "out"), "seeds": [0], "base": TINY_BASE, "methods": [{"name": "fgrpo"}]}
    (spec,) = expand_runs(load_compare_config(_write(tmp_path, exp)))

    def stopped_run(cmd: list[str], log: Path, poll: float) -> Stage:  # what a max_time stop leaves behind
        out = Path(spec.train_cfg.output_dir)
        (out / "model").mkdir(parents=True)
        (out / "model" / "config.json").write_text("{}")
        (out / "stopped_early.json").write_text(json.dumps({"step": 1}))
        return Stage(1.0, 0, 0, 1.0)

    monkeypatch.setattr("fgrpo.experiments.runner.run_measured", stopped_run)
    with pytest.raises(RunFailed, match="stopped early by max_time"):
        run_one(spec)
    assert not spec.done


def test_rollouts_to_reach_hand_worked() -> None:
    steps, values = [0, 50, 100, 150, 200], [0.60, 0.62, 0.70, 0.68, 0.72]
    # 95% of the last value: 0.684; the warm start (0.60) is below it, step 100 (0.70) is the first above
    assert rollouts_to_reach(steps, values, 128) == 100 * 128
    # 95% of the gain 0.12 over 0.60: 0.714; only step 200 reaches it
    assert rollouts_to_reach(steps, values, 128, of="gain") == 200 * 128
    assert rollouts_to_reach(steps, values, 128, fraction=0.5, of="gain") == 100 * 128  # 0.66
    # a warm start already at 95% of the end: 0 rollouts; a curve ending below its start: no gain
    assert rollouts_to_reach([0, 100], [0.72, 0.73], 128) == 0
    assert rollouts_to_reach([0, 100, 200], [0.72, 0.75, 0.71], 128, of="gain") is None
    assert rollouts_to_reach([], [], 128) is None
    with pytest.raises(ValueError, match="'final' or 'gain'"):
        rollouts_to_reach(steps, values, 128, of="best")
    with pytest.raises(ValueError, match="5 steps but 4 values"):
        rollouts_to_reach(steps, values[:4], 128)


def test_report_only_aggregates_finished_runs_by_hand(tmp_path: Path) -> None:
    exp = {"output_dir": str(tmp_path / "out"), "seeds": [0, 1, 2], "base": TINY_BASE,
           "methods": [{"name": "fgrpo"}, {"name": "random", "kind": "scorer"}]}  # fmt: skip
    cfg = load_compare_config(_write(tmp_path, exp))
    ndcg = {("fgrpo", 0): 0.5, ("fgrpo", 1): 0.7, ("random", 0): 0.5, ("random", 1): 0.6, ("random", 2): 0.7}
    for spec in expand_runs(cfg):
        if (spec.method, spec.seed) not in ndcg:
            continue  # fgrpo seed 2 "still running"
        spec.run_dir.mkdir(parents=True)
        metrics = {"NDCG@5": ndcg[(spec.method, spec.seed)], "format/valid_rate": 1.0, "num_examples": 16, "ci95/NDCG@5": 0.1}
        spec.marker.write_text(json.dumps({"config_digest": spec.digest(), "metrics": metrics, "train_s": 10.0, "eval_s": 2.0,
                                           "wall_clock_s": 12.0, "cpu_s": 11.0, "peak_rss_gib": 0.5}))  # fmt: skip
        if spec.kind == "train":
            train = Path(spec.train_cfg.output_dir)
            train.mkdir(parents=True)
            rows = [{"step": 0, "valid/NDCG@5": 0.2}] + [
                {"step": k, "reward/slate": 0.1 * k, "reward/rank": 0.0, "step_time_s": 1.0, "valid/NDCG@5": 0.2 + 0.1 * k} for k in (1, 2)
            ]
            (train / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    outcome = report_compare(cfg)
    md = outcome.files["results.md"].read_text()
    metrics_table = md.split("## Test metrics")[1].split("\n## ")[0]
    rows = {line.split("|")[1].strip(): line for line in metrics_table.splitlines() if line.startswith("| ")}
    # fgrpo: 0.5, 0.7 -> mean 0.6, sd 0.1414, se 0.1, t(1) 12.7062; random: the 3-value example above
    assert "| 2 |" in rows["fgrpo"] and "0.600 ± 1.271" in rows["fgrpo"]
    assert "| 3 |" in rows["random"] and "0.600 ± 0.248" in rows["random"]
    with outcome.files["runs.csv"].open() as fh:
        status = {(r["method"], r["seed"]): r["status"] for r in csv.DictReader(fh)}
    assert status[("fgrpo", "2")] != "done" and status[("random", "2")] == "done"
    # both finished fgrpo seeds: valid 0.2 -> 0.3 -> 0.4 at steps 0-2, 2 x 2 = 4 rollouts a step;
    # 95% of the last (0.38) and of the gain (0.39) are both first reached at step 2: 8 rollouts
    eff = md.split("## Sample efficiency")[1].split("\n## ")[0]
    row = next(line for line in eff.splitlines() if line.startswith("| fgrpo "))
    assert [c.strip() for c in row.split("|")[1:-1]] == ["fgrpo", "2", "0.200 ± 0.000", "0.400 ± 0.000", "0.200 ± 0.000", "2/2", "8 ± 0", "8 ± 0"]
    saved = json.loads(outcome.files["results.json"].read_text())["sample_efficiency"]["fgrpo"]
    assert saved["seeds"] == [0, 1] and saved["to_95_final"] == [8, 8] and saved["to_95_gain"] == [8, 8]
    assert all(outcome.files[f].stat().st_size > 0 for f in ("curves_rewards.png", "curves_valid_ndcg.png", "sample_efficiency.png"))


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory: pytest.TempPathFactory) -> tuple[CompareConfig, list[str]]:
    tmp = tmp_path_factory.mktemp("compare")
    exp = {
        "output_dir": str(tmp / "out"), "seeds": [0, 1], "base": TINY_BASE,
        "eval": {"limit": 16, "batch_size": 16, "torch_threads": 1},
        "methods": [
            {"name": "fgrpo", "kind": "train"},
            {"name": "grpo", "kind": "train", "overrides": {"advantage_estimator": "grpo"}},
            {"name": "random", "kind": "scorer"},
        ],
    }  # fmt: skip
    cfg = load_compare_config(_write(tmp, exp))
    log: list[str] = []
    outcome = run_compare(cfg, echo=log.append)
    assert not outcome.failures, log
    return cfg, log


@pytest.mark.slow
def test_end_to_end_results_files_and_table(tiny_experiment: tuple[CompareConfig, list[str]]) -> None:
    cfg, _ = tiny_experiment
    out = Path(cfg.output_dir)
    for name in ("results.md", "results.json", "runs.csv", "curves_rewards.png", "curves_valid_ndcg.png", "sample_efficiency.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "results.md").read_text()
    metrics_table = md.split("## Test metrics")[1].split("\n## ")[0]
    rows = {line.split("|")[1].strip(): line for line in metrics_table.splitlines() if line.startswith("| ")}
    assert {"fgrpo", "grpo", "random"} <= set(rows)
    assert "±" in rows["random"] and "slate+ranking" in rows["fgrpo"] and "scorer" in rows["random"]
    assert re.search(r"\| \d\.\d{3} ± \d\.\d{3} \|", rows["random"])  # a mean ± CI cell
    assert "NDCG@5" in rows["method"] and "peak RSS" in md
    summary = json.loads((out / "results.json").read_text())["methods"]
    assert summary["fgrpo"]["n"] == 2 and summary["random"]["n"] == 2
    ndcg = summary["random"]["metrics"]["NDCG@5"]
    assert len(ndcg["values"]) == 2 and ndcg["ci95"] is not None
    assert ndcg["mean"] == pytest.approx(sum(ndcg["values"]) / 2)
    with (out / "runs.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 6 and all(r["status"] == "done" for r in table)
    trained = [r for r in table if r["kind"] == "train"]
    assert all(float(r["train_s"]) > 0 and float(r["cpu_s"]) > 0 and float(r["peak_rss_gib"]) > 0.05 for r in trained)
    assert all(r["rollouts"] == "8" for r in trained)  # 2 steps x 2 prompts x G=2


@pytest.mark.slow
def test_second_invocation_skips_finished_runs(tiny_experiment: tuple[CompareConfig, list[str]]) -> None:
    cfg, _ = tiny_experiment
    markers = sorted(Path(cfg.output_dir).glob("runs/*/seed*/metrics.json"))
    assert len(markers) == 6
    before = {m: m.stat().st_mtime_ns for m in markers}
    log: list[str] = []
    outcome = run_compare(cfg, echo=log.append)
    assert not outcome.failures
    assert sum("skipped" in line for line in log) == 6 and not any("running" in line for line in log)
    assert {m: m.stat().st_mtime_ns for m in markers} == before
    # a run that lost its final marker is redone: only its evaluation, since training finished
    markers[0].unlink()
    log.clear()
    run_compare(cfg, echo=log.append)
    assert sum("running" in line for line in log) == 1 and markers[0].is_file()


def test_only_seeds_splits_one_experiment_across_processes(tmp_path: Path) -> None:
    exp = {"output_dir": str(tmp_path / "out"), "seeds": [0, 1], "base": TINY_BASE, "eval": {"limit": 4},
           "methods": [{"name": "random", "kind": "scorer"}]}  # fmt: skip
    path = _write(tmp_path, exp)
    with pytest.raises(ConfigError, match="only_seeds"):
        load_compare_config(path, ["only_seeds=[2]"])
    first: list[str] = []
    outcome = run_compare(load_compare_config(path, ["only_seeds=[1]"]), echo=first.append)
    assert not outcome.failures and set(outcome.records) == {("random", 1)}
    assert any("random seed 0" in line and "not in only_seeds [1]" in line for line in first)
    assert first[0].startswith("compare: 2 runs, 0 already done, 1 left to other processes")
    assert not (tmp_path / "out" / "runs" / "random" / "seed0").exists()
    second: list[str] = []
    outcome = run_compare(load_compare_config(path, ["only_seeds=[0]"]), echo=second.append)
    assert set(outcome.records) == {("random", 0), ("random", 1)}  # the other process's run read, not redone
    assert any("random seed 1" in line and "done before" in line for line in second)
    assert second[0].startswith("compare: 2 runs, 1 already done ->")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["methods"]["random"]["n"] == 2 and results["methods"]["random"]["seeds"] == [0, 1]
