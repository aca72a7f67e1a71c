"""The commands end to end on the toy task with tiny models: LoRA, KL, eval, rank, errors."""

from __future__ import annotations

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


def test_eval_writes_metrics_table_and_predictions(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    proc = fgrpo("eval", f"model={trained / 'model'}", "dataset=toy", f"output_dir={out}", "max_new_tokens=24", "--limit", "12")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_examples"] == 12 and 0 <= metrics["NDCG@5"] <= 1
    assert {"Recall@1", "Precision@3", "Hit@5", "MRR", "format/valid_rate", "errors@5/slate_miss"} <= set(metrics)
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 12 and {"id", "slate", "ranking", "relevant", "completion"} <= set(preds[0])
    assert "| NDCG@5" in (out / "metrics.md").read_text() or "NDCG@5" in proc.stdout


def test_rank_command_and_python_api(trained: Path) -> None:
    rows = [{"id": "a", "task": "toy", "query": "select the marked items",
             "candidates": [{"id": "x", "text": "cat"}, {"id": "y", "text": "dog *"}]}]
    proc = fgrpo("rank", "--model", str(trained / "model"), stdin="\n".join(json.dumps(r) for r in rows))
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["id"] == "a" and set(out) >= {"slate", "ranking", "valid", "errors", "completion"}
    assert set(out["slate"]) <= {"x", "y"}

    import fgrpo as api

    res = api.Ranker.from_pretrained(trained / "model", max_new_tokens=24).rank("select the marked items", ["cat", "dog *"], task="toy")
    assert set(res.ranking) <= {"1", "2"}


def test_config_errors_exit_2_and_name_the_key() -> None:
    proc = fgrpo("train", "--config", "configs/toy.yaml", "group_sise=4", ok=False)
    assert proc.returncode == 2 and "group_sise" in proc.stderr
    proc = fgrpo("train", "--config", "configs/toy.yaml", "max_rank=12", ok=False)
    assert proc.returncode == 2 and "max_rank" in proc.stderr and "max_slate" in proc.stderr


def test_options_lists_every_key() -> None:
    proc = fgrpo("options", "train")
    assert "advantage_estimator" in proc.stdout and "group_size" in proc.stdout


def test_bad_data_row_names_file_line_and_field(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    good = {"id": "1", "query": "q", "candidates": [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}], "relevance": {"a": 1}}
    bad = {**good, "id": "2", "relevance": {"zz": 1}}
    (data / "train.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    proc = fgrpo("train", "--config", "configs/toy.yaml", f"dataset={data}", f"output_dir={tmp_path / 'o'}", ok=False)
    assert proc.returncode != 0
    assert "train.jsonl:2" in proc.stderr and "relevance" in proc.stderr
