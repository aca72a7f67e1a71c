"""The commands end to end on the toy task with tiny models: LoRA, KL, eval, rank, errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fgrpo.trainer.metrics_log import read_metrics

REPO = Path(__file__).resolve().parents[1]
FAST = ["--config", "configs/toy.yaml", "sft_warmup_steps=30", "tensorboard=false", "prompts_per_step=2", "group_size=4"]


def fgrpo(*args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "fgrpo", *args], cwd=REPO, capture_output=True, text=True,
                          input=stdin, timeout=600)
    if ok:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "toy"
    fgrpo("train", *FAST, f"output_dir={out}", "max_steps=2")
    return out


def test_lora_with_kl_to_the_adapter_free_base(tmp_path: Path) -> None:
    out = tmp_path / "lora"
    fgrpo("train", *FAST, f"output_dir={out}", "max_steps=3", "use_lora=true", "kl_beta=0.1",
          "learning_rate=0.01", "advantage_estimator=grpo", "sft_warmup_steps=300")
    rows = read_metrics(out / "metrics.jsonl")
    rl = [r for r in rows if "loss" in r]
    assert rl[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # before any update the policy is the base
    first_update = next(i for i, r in enumerate(rl) if r["grad_norm"] > 0)
    assert first_update < 2, "no learning signal in the first steps: the test needs a warmer start"
    assert rl[first_update + 1]["kl"] > 0  # after an update the adapters moved the policy
    assert (out / "checkpoints" / "step-000003" / "model" / "adapter_model.safetensors").is_file()
    assert (out / "model" / "config.json").is_file()  # merged into a normal HF folder
    assert "fgrpo" in (out / "model" / "README.md").read_text()  # with a model card


TOY_IDS = [f"toy-20000-{i}" for i in range(12)]  # the first 12 toy test pools (seed 0 + 20000)
PRED_KEYS = {"id", "slate", "ranking", "relevant", "slate_valid", "rank_valid", "errors", "completion",
             "candidate_ids", "slate_ids", "ranking_ids", "relevant_ids"}  # the ids: joinable without the data


def _eval(model: Path, out: Path, *extra: str) -> tuple[dict, list[dict]]:
    proc = fgrpo("eval", f"model={model}", "dataset=toy", f"output_dir={out}", "max_new_tokens=24", *extra, "--limit", "12")
    assert "| NDCG@5 |" in (out / "metrics.md").read_text() and "| model |" in (out / "metrics.md").read_text(), proc.stdout
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return json.loads((out / "metrics.json").read_text()), preds


def test_eval_writes_metrics_table_and_predictions(trained: Path, tmp_path: Path) -> None:
    # the fixture's model (30 warm-up steps) does not yet write the format: the paper's
    # protocol counts every answer as invalid and scores it 0
    metrics, preds = _eval(trained / "model", tmp_path / "eval")
    assert metrics["num_examples"] == 12
    assert {"Recall@1", "Precision@3", "Hit@5", "MRR", "format/valid_rate", "errors@5/slate_miss"} <= set(metrics)
    assert (metrics["NDCG@5"], metrics["MRR"], metrics["format/valid_rate"]) == (0.0, 0.0, 0.0)
    assert [p["id"] for p in preds] == TOY_IDS and all(set(p) == PRED_KEYS for p in preds)
    assert all(p["slate"] == [] and p["ranking"] == [] and not p["slate_valid"] and p["errors"] for p in preds)
    assert preds[0]["relevant"] == [2]
    # constrained decoding: every answer valid, so the same model gets real, exact scores
    metrics, preds = _eval(trained / "model", tmp_path / "eval_constrained", "constrained=true")
    assert metrics["num_examples"] == 12 and metrics["format/valid_rate"] == 1.0
    assert metrics["NDCG@5"] == pytest.approx(0.19328282860331658, abs=1e-9)
    assert metrics["MRR"] == pytest.approx(0.25, abs=1e-9) and metrics["Hit@1"] == pytest.approx(0.25, abs=1e-9)
    assert [p["id"] for p in preds] == TOY_IDS
    assert [(p["slate"], p["ranking"], p["errors"]) for p in preds] == [([6], [6], [])] * 12


def test_train_logs_the_error_analysis_and_phase_signals(trained: Path) -> None:
    rows = [r for r in read_metrics(trained / "metrics.jsonl") if "loss" in r]
    assert len(rows) == 2
    for r in rows:
        relevant, miss, drop = (r[f"rollout/errors@5/{k}"] for k in ("relevant", "slate_miss_count", "rank_drop_count"))
        assert relevant > 0 and 0 <= miss + drop <= relevant
        shares = r["rollout/errors@5/slate_miss"] + r["rollout/errors@5/rank_drop"]
        assert shares == pytest.approx(1.0 if miss + drop else 0.0)
        assert 0 <= r["groups/slate_rank_corr_groups"] <= 2  # prompts_per_step=2
        assert (r["groups/slate_rank_corr"] is None) == (r["groups/slate_rank_corr_groups"] == 0)
        for phase in ("slate", "rank"):
            assert r[f"adv/{phase}_std"] >= r[f"adv/{phase}_group_std"] - 1e-9 >= -1e-9  # total >= mean within


def test_scorer_eval_writes_the_error_analysis_of_its_top_max_slate(tmp_path: Path) -> None:
    """A scorer's slate is its top max_slate, its ranking the top max_rank: errors@k counted
    on those, as for an LLM's answer."""
    from fgrpo.evaluation.metrics import error_analysis

    out = tmp_path / "pop"
    fgrpo("eval", "method=popularity", "dataset=toy", f"output_dir={out}", "max_slate=3", "max_rank=2", "ks=[1,2]", "--limit", "40")
    metrics = json.loads((out / "metrics.json").read_text())
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert all(len(p["slate"]) == 3 and p["ranking"] == p["slate"][:2] for p in preds)
    grades = [[int(k in p["relevant"]) for k in range(1, 9)] for p in preds]  # toy pools of 8
    ref = error_analysis([p["ranking"] for p in preds], [p["slate"] for p in preds], grades, k=2)
    assert {k: metrics[f"errors@2/{k}"] for k in ref if k != "k"} == {k: v for k, v in ref.items() if k != "k"}
    assert metrics["errors@2/slate_miss_count"] > 0 and metrics["errors@2/rank_drop_count"] > 0


POOL = [{"id": "x", "text": "cat"}, {"id": "y", "text": "dog *"}]


def test_rank_command_and_python_api(trained: Path) -> None:
    import fgrpo as api

    rows = [{"id": "a", "task": "toy", "query": "select the marked items", "candidates": POOL}]
    stdin = "\n".join(json.dumps(r) for r in rows)
    out = json.loads(fgrpo("rank", "--model", str(trained / "model"), stdin=stdin).stdout.strip().splitlines()[-1])
    # unconstrained, the fixture's model writes no number: both parts are invalid and empty
    assert out == {"id": "a", "slate": [], "ranking": [], "valid": False, "errors": ["slate_empty", "rank_empty"],
                   "completion": "<SLATE> </SLATE> <RANK> > > > > > > </RANK>"}
    res = api.Ranker.from_pretrained(trained / "model", max_new_tokens=24).rank("select the marked items", ["cat", "dog *"], task="toy")
    assert dataclasses.asdict(res) == {k: v for k, v in out.items() if k != "id"}  # the API decodes the same
    # constrained: a valid answer, the marked candidate (y, number 2) in both parts
    proc = fgrpo("rank", "--model", str(trained / "model"), "--constrained", stdin=stdin)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"id": "a", "slate": ["y"], "ranking": ["y"], "valid": True, "errors": [],
                   "completion": "<SLATE> [2] </SLATE> <RANK> [2] </RANK>"}
    pairs = [(c["id"], c["text"]) for c in POOL]
    res = api.Ranker.from_pretrained(trained / "model", constrained=True).rank("select the marked items", pairs, task="toy")
    assert dataclasses.asdict(res) == {k: v for k, v in out.items() if k != "id"}


def test_config_errors_exit_2_and_name_the_key() -> None:
    proc = fgrpo("train", "--config", "configs/toy.yaml", "group_sise=4", ok=False)
    assert proc.returncode == 2 and "group_sise" in proc.stderr
    proc = fgrpo("train", "--config", "configs/toy.yaml", "max_rank=12", ok=False)
    assert proc.returncode == 2 and "max_rank" in proc.stderr and "max_slate" in proc.stderr


def test_options_lists_every_key() -> None:
    from fgrpo.config import field_help
    from fgrpo.config.commands import TrainConfig

    proc = fgrpo("options", "train")
    assert "advantage_estimator" in proc.stdout and "group_size" in proc.stdout
    missing = [name for name in field_help(TrainConfig) if name not in proc.stdout]
    assert not missing, missing


def test_bad_data_row_names_file_line_and_field(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    good = {"id": "1", "query": "q", "candidates": [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}], "relevance": {"a": 1}}
    bad = {**good, "id": "2", "relevance": {"zz": 1}}
    (data / "train.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    proc = fgrpo("train", "--config", "configs/toy.yaml", f"dataset={data}", f"output_dir={tmp_path / 'o'}", ok=False)
    assert proc.returncode != 0
    assert "train.jsonl:2" in proc.stderr and "relevance" in proc.stderr
