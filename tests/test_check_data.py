"""`fgrpo check-data`: every check on small hand-made folders, the CLI, the checks at the
start of eval, and the small things (help text, "did you mean", JSON errors, BOM,
checkpointing without the deprecation warning)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from fgrpo.config import ConfigError, load_config
from fgrpo.config.commands import EvalConfig, TrainConfig
from fgrpo.data.checks import check_folder, prompt_problems, report_text
from fgrpo.data.schema import DataError, read_jsonl
from fgrpo.format.prompts import TASK_INTROS

REPO = Path(__file__).resolve().parents[1]


def row(ex_id: str, rel: list[int], n: int = 4, query: str = "q", task: str = "movies", texts: list[str] | None = None) -> dict:
    texts = texts or [f"item {k}" for k in range(n)]
    return {
        "id": ex_id,
        "task": task,
        "query": query,
        "candidates": [{"id": f"c{k}", "text": t} for k, t in enumerate(texts)],
        "relevance": {f"c{k}": 1 for k in rel},
    }


def write(folder: Path, splits: dict[str, list]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
        (folder / f"{name}.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return folder


def clean(folder: Path) -> Path:
    return write(folder, {
        "train": [row("a", [0]), row("b", [1, 2]), row("c", [0], n=6)],
        "valid": [row("v", [3])],
        "test": [row("t1", [0]), row("t2", [1])],
    })  # fmt: skip


def test_clean_folder_counts_and_histograms(tmp_path: Path) -> None:
    report = check_folder(clean(tmp_path), known_tasks=TASK_INTROS, max_slate=10)
    assert report.ok and report.warnings == []
    assert report.counts == {"train": 3, "valid": 1, "test": 2}
    assert report.stats["pool_size"]["train"] == {"4": 2, "6": 1}
    assert report.stats["relevant_per_pool"]["train"] == {"1": 2, "2": 1}
    assert report.stats["skip_rules"] == {"skip_invalid_rows": {"train": 0, "valid": 0, "test": 0}}
    text = report_text(report, tmp_path)
    assert "examples: train 3, valid 1, test 2" in text and "pool size (train): 4: 2, 6: 1" in text
    assert text.endswith("ok")


def test_every_problem_is_found(tmp_path: Path) -> None:
    folder = write(tmp_path, {
        "train": [
            row("a", [0]), row("dup", [0]), row("e", [0], query="  "),
            row("f", [0], texts=["x", "", "y", "z"]), row("g", [0], texts=["x", "x", "y", "z"]),
            row("h", [0, 1, 2]), row("w", [0], task="weird"),
            '{"id": "bad", "query": 3, "candidates": [], "relevance": []}', '{"id": "a", "query": "q", "candidates": [{"id": "c", "text": "t"}], "relevance": ["c"]}',
            "{not json",
        ],
        "test": [row("dup", [1])],
    })  # fmt: skip
    report = check_folder(folder, known_tasks=TASK_INTROS, max_slate=2)
    assert not report.ok
    assert report.counts == {"train": 7, "valid": 0, "test": 1}
    fails = "\n".join(report.failures)
    assert "train.jsonl: 3 bad row(s) (skip_invalid_rows=true would drop them)" in fails
    assert "train.jsonl:8: field 'query' must be a string" in fails
    assert "train.jsonl:9: field 'id': duplicate example id 'a'" in fails
    assert "train.jsonl:10: not valid JSON" in fails
    warns = "\n".join(report.warnings)
    assert "valid.jsonl: file not found (optional" in warns
    assert "train: 1 example(s) with an empty query: " + str(folder / "train.jsonl") + ":3" in warns
    assert "train: 1 empty candidate text(s): " + str(folder / "train.jsonl") + ":4: candidates[1]" in warns
    assert "1 pool(s) show one text for two candidates" in warns and "train.jsonl:5" in warns
    assert "more relevant candidates than max_slate (2)" in warns and "train.jsonl:6" in warns
    assert "task 'weird' has no prompt of its own" in warns
    assert "1 example id(s) appear in two splits" in warns and "'dup' (train, test)" in warns
    assert report.stats["skip_rules"]["skip_invalid_rows"] == {"train": 3, "test": 0}
    assert report.stats["duplicate_ids_across_splits"] == 1


def test_missing_required_split_fails(tmp_path: Path) -> None:
    folder = write(tmp_path, {"train": [row("a", [0])]})
    report = check_folder(folder, known_tasks=TASK_INTROS)
    assert report.failures == [f"{folder / 'test.jsonl'}: file not found"]


def test_prompt_lengths_against_the_context(tmp_path: Path) -> None:
    folder = clean(tmp_path)
    splits = {"train": read_jsonl(folder / "train.jsonl")}

    def encode(ex):  # one "token" per candidate, plus 10
        return [0] * (10 + ex.num_candidates)

    failures, stats = prompt_problems(splits, encode, context=20, new_tokens=5)
    # 14 + 5 fits in 20, 16 + 5 does not
    assert stats["train"] == {"min": 14, "max": 16, "mean": 14.7, "overflow": 1}
    assert len(failures) == 1 and "train: 1 of 3 prompt(s) + 5 new tokens exceed the context of 20" in failures[0]
    assert "train.jsonl:3 (16 tokens)" in failures[0]
    report = check_folder(folder, known_tasks=TASK_INTROS, encode=encode, context=20, new_tokens=5)
    assert report.stats["skip_rules"]["prompt_overflow"] == {"train": 1, "valid": 0, "test": 0}


def fgrpo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fgrpo", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_cli_check_data_with_a_model(tmp_path: Path) -> None:
    folder = clean(tmp_path / "data")
    out = tmp_path / "out"
    proc = fgrpo("check-data", str(folder), "model=builtin:tiny-llama", f"output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "prompt tokens (context" in proc.stdout and proc.stdout.rstrip().endswith("check_data.json")
    record = json.loads((out / "check_data.json").read_text())
    assert record["ok"] and record["answer_format"]["max_slate"] == 10
    assert record["prompt_tokens"]["train"]["overflow"] == 0
    # a context too small for any prompt: a failure, exit 1
    proc = fgrpo("check-data", str(folder), "model=builtin:tiny-llama", "prompt_context=40", f"output_dir={out}")
    assert proc.returncode == 1 and "FAILED: train: 3 of 3 prompt(s) + 64 new tokens exceed" in proc.stdout


def test_eval_runs_the_checks_and_warns(tmp_path: Path) -> None:
    folder = write(tmp_path / "data", {"train": [row("a", [0])], "test": [row("t", [0], task="weird"), row("u", [1], task="weird")]})
    out = tmp_path / "eval"
    proc = fgrpo("eval", "method=random", f"dataset={folder}", f"output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("data warning: test: task 'weird' has no prompt of its own") == 1
    checks = json.loads((out / "data_report.json").read_text())["checks"]
    assert checks["tasks"]["test"] == {"weird": 2}


def test_training_commands_run_the_checks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from fgrpo.commands.inputs import train_valid
    from fgrpo.config.commands import SFTConfig

    folder = write(tmp_path / "data", {"train": [row("a", [0, 1, 2]), row("b", [0], query="")], "valid": [row("a", [1])]})
    cfg = SFTConfig(dataset=str(folder), max_slate=2, max_rank=1, output_dir=str(tmp_path / "o"))
    report: dict = {}
    train, valid = train_valid(cfg, report)  # what sft, train and the dry run read through
    assert len(train) == 2 and len(valid) == 1
    err = capsys.readouterr().err
    for text in ("more relevant candidates than max_slate (2)", "empty query", "appear in two splits"):
        assert err.count(text) == 1, text
    assert len(report["checks"]["warnings"]) == 3
    assert report["checks"]["relevant_per_pool"]["train"] == {"1": 1, "3": 1}


# --------------------------------------------------------------------------- small things


def test_help_keeps_key_value_and_eval_mentions_overrides() -> None:
    from typer.testing import CliRunner

    from fgrpo.cli import app

    runner = CliRunner()
    top = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "[key=value ...]" in top.output
    for command in ("eval", "train", "sft", "prepare", "check-data"):
        text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        assert "[key=value ...]" in text and f"fgrpo options {command}" in text, command


@pytest.mark.parametrize(
    ("cls", "override", "hint"),
    [
        (EvalConfig, "metod=bm25", "(did you mean method, model?)"),
        (TrainConfig, "grop_size=4", "(did you mean group_size"),
        (TrainConfig, "learnig_rate=1", "(did you mean learning_rate"),
        (EvalConfig, "method=bm52", "(did you mean bm25?)"),
    ],
)
def test_did_you_mean(cls: type, override: str, hint: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(cls, None, [override])
    assert hint in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, None, ["zzzz=1"])
    assert "did you mean" not in str(e.value)


def test_json_error_says_at_column_once(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"id": "a\tb"}\n')  # a raw tab inside a string: "Invalid control character at"
    with pytest.raises(DataError) as e:
        read_jsonl(path)
    assert "Invalid control character at column 10" in str(e.value) and "at at" not in str(e.value)


def test_utf8_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(row("a", [0])) + "\n" + json.dumps(row("b", [1])) + "\n").encode())
    assert [ex.id for ex in read_jsonl(path)] == ["a", "b"]
    assert check_folder(write(tmp_path / "x", {"test": []}), ["train"], known_tasks=TASK_INTROS).counts == {"train": 0}
    path2 = tmp_path / "x" / "train.jsonl"
    path2.write_bytes(path.read_bytes())
    assert check_folder(tmp_path / "x", ["train"], known_tasks=TASK_INTROS).counts == {"train": 2}


def test_checkpointing_without_the_deprecation_warning() -> None:
    from fgrpo.models.loading import add_lora, enable_checkpointing, load_model

    model = load_model("builtin:tiny-llama")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        enable_checkpointing(model)
        add_lora(load_model("builtin:tiny-llama"), 4, 8, 0.0, "all-linear")  # peft's read of the old name
    from transformers.modeling_layers import GradientCheckpointingLayer

    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert layers and all(m.gradient_checkpointing for m in layers)  # what trainer/forward.py reads
