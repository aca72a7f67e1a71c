"""Bad input and configuration (docs/reliability.md): every bad row, value or disk gives a
one-line error naming the file, line and field (data) or the key (config), and loses
nothing; no raw tracebacks. Also a large seeded fuzz of the completion parser."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fgrpo.config import ConfigError, load_config
from fgrpo.config.commands import SFTConfig, TrainConfig
from fgrpo.data.schema import DataError, read_jsonl, write_jsonl
from fgrpo.data.toy import make_toy_examples
from fgrpo.format.completion import (
    ERROR_KINDS,
    RANK_CLOSE,
    RANK_OPEN,
    SLATE_CLOSE,
    SLATE_OPEN,
    parse_completion,
)

# a tiny, quick run: one RL step of the random tiny model on a handful of toy rows
QUICK = ["model=builtin:tiny-llama", "max_steps=1", "group_size=2", "prompts_per_step=1", "max_new_tokens=8",
         "tensorboard=false", "torch_threads=1", "save_every=1", "sft_warmup_steps=0", "tiny_hidden_size=32"]


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``fgrpo ARGS`` in this process through the real entry point: (exit code, stderr)."""
    from fgrpo import cli as cli_module

    monkeypatch.setattr(sys, "argv", ["fgrpo", *args])
    capsys.readouterr()
    try:
        cli_module.main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def row(i: int, **kw) -> dict:
    base = {"id": f"e{i}", "task": "toy", "query": "select the marked items",
            "candidates": [{"id": "a", "text": "apple *"}, {"id": "b", "text": "pear"}], "relevance": {"a": 1}}
    return {**base, **kw}


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


def toy_folder(root: Path, extra_train: list[str | bytes] = ()) -> Path:
    """A prepared-style folder of toy rows; ``extra_train`` lines appended to train.jsonl."""
    root.mkdir(parents=True, exist_ok=True)
    write_jsonl(make_toy_examples(6, seed=0), root / "train.jsonl")
    write_jsonl(make_toy_examples(3, seed=1), root / "valid.jsonl")
    write_jsonl(make_toy_examples(3, seed=2), root / "test.jsonl")
    with (root / "train.jsonl").open("ab") as fh:
        for x in extra_train:
            fh.write((x if isinstance(x, bytes) else x.encode()) + b"\n")
    return root


# ----------------------------------------------------------------------------- item 4


def test_duplicate_example_id_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(row(1)), json.dumps(row(2)), json.dumps(row(1, query="other"))])
    with pytest.raises(DataError, match=r"d\.jsonl:3: field 'id': duplicate example id 'e1' \(first at line 1\)"):
        read_jsonl(path)
    stats: dict[str, int] = {}
    kept = read_jsonl(path, skip_invalid=True, stats=stats)  # skipped and counted, the first kept
    assert [ex.id for ex in kept] == ["e1", "e2"] and kept[0].query == "select the marked items"
    assert stats == {"read": 2, "skipped": 1}


def test_train_refuses_duplicate_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    dup = json.dumps(make_toy_examples(1, seed=0)[0].to_json())  # toy-0-0 again, at line 7
    data = toy_folder(tmp_path / "data", [dup])
    code, err = cli(monkeypatch, capsys, "train", f"dataset={data}", f"output_dir={tmp_path / 'out'}", *QUICK)
    assert code == 2 and "data error:" in err and "train.jsonl:7: field 'id': duplicate example id 'toy-0-0'" in err


# ----------------------------------------------------------------------------- item 11


@pytest.mark.parametrize("grade", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_grades_name_the_field(tmp_path: Path, grade: str) -> None:
    line = json.dumps(row(1)).replace('"relevance": {"a": 1}', f'"relevance": {{"a": {grade}}}')
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(row(0)), line])
    with pytest.raises(DataError, match=r"d\.jsonl:2: field 'relevance\.a': grade must be an integer"):
        read_jsonl(path)
    stats: dict[str, int] = {}
    assert len(read_jsonl(path, skip_invalid=True, stats=stats)) == 1 and stats["skipped"] == 1


def test_non_utf8_bytes_name_the_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(row(0)), b'{"id": "\xff\xfe"}', json.dumps(row(2))])
    with pytest.raises(DataError, match=r"d\.jsonl:2: not valid UTF-8 \(byte 0xff at column 9\)"):
        read_jsonl(path)
    stats: dict[str, int] = {}
    assert [ex.id for ex in read_jsonl(path, skip_invalid=True, stats=stats)] == ["e0", "e2"]
    assert stats == {"read": 2, "skipped": 1}


@pytest.mark.parametrize(("content", "why"), [
    ([], "the file is empty or blank"),
    (["", "   ", "\t"], "the file is empty or blank"),
    (["{broken", b"\xff"], "all 2 rows are invalid"),
])
def test_empty_train_split_is_a_data_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], content: list, why: str
) -> None:
    data = tmp_path / "data"
    write_lines(data / "train.jsonl", content)
    code, err = cli(monkeypatch, capsys, "train", f"dataset={data}", f"output_dir={tmp_path / 'out'}",
                    "skip_invalid_rows=true", *QUICK)
    assert code == 2 and f"train.jsonl: no examples: {why}" in err, err


# ----------------------------------------------------------------------------- items 12, 15 (resume)


@pytest.fixture(scope="module")
def skipped_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """One training step on a folder with two bad rows, skip_invalid_rows=true: (data, out, stderr)."""
    import subprocess

    root = tmp_path_factory.mktemp("skipped")
    data = toy_folder(root / "data", ["{not json", b"\xff\xfe"])
    out = root / "out"
    proc = subprocess.run([sys.executable, "-m", "fgrpo", "train", f"dataset={data}", f"output_dir={out}",
                           "skip_invalid_rows=true", *QUICK], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return data, out, proc.stderr


def test_skipped_rows_are_reported_on_console_and_in_outputs(skipped_run: tuple[Path, Path, str]) -> None:
    data, out, err = skipped_run
    assert f"data: skipped 2 invalid row(s) of {data / 'train.jsonl'} (skip_invalid_rows=true); 6 read" in err
    report = json.loads((out / "data_report.json").read_text())
    assert report["files"][str(data / "train.jsonl")] == {"read": 6, "skipped": 2}
    assert report["files"][str(data / "valid.jsonl")] == {"read": 3, "skipped": 0}


def test_eval_accepts_skip_invalid_rows_and_reports_the_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = toy_folder(tmp_path / "data")
    with (data / "test.jsonl").open("a") as fh:
        fh.write("{bad\n")
    out = tmp_path / "eval"
    code, err = cli(monkeypatch, capsys, "eval", "method=random", f"dataset={data}", f"output_dir={out}", "skip_invalid_rows=true")
    assert code == 0 and "skipped 1 invalid row(s)" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data/skipped_rows"] == 1 and metrics["num_examples"] == 3
    assert json.loads((out / "data_report.json").read_text())["files"][str(data / "test.jsonl")]["skipped"] == 1
    code, err = cli(monkeypatch, capsys, "eval", "method=random", f"dataset={data}", f"output_dir={out}")
    assert code == 2 and "test.jsonl:4: not valid JSON" in err


@pytest.mark.parametrize("command", ["train", "sft", "eval", "pretrain-items", "prepare"])
def test_every_data_command_accepts_skip_invalid_rows(command: str) -> None:
    from fgrpo.cli import _config_classes

    cfg = load_config(_config_classes()[command], None, ["skip_invalid_rows=true"] + (["input_path=x"] if command == "prepare" else []))
    assert cfg.skip_invalid_rows is True
    if command == "prepare":
        assert cfg.skip_invalid is True  # the same switch under prepare's own name


def test_resume_with_a_changed_group_size_is_refused(
    skipped_run: tuple[Path, Path, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out, _ = skipped_run
    before = (out / "config.yaml").read_text()
    args = ["train", "--resume", f"dataset={data}", f"output_dir={out}", "skip_invalid_rows=true", *QUICK]
    code, err = cli(monkeypatch, capsys, *[a for a in args if a != "group_size=2"], "group_size=3", "max_steps=2")
    assert code == 2 and "config error: --resume: key 'group_size' (2 -> 3) differs" in err, err
    assert (out / "config.yaml").read_text() == before  # the run's record is untouched
    assert (out / "checkpoints" / "step-000001").is_dir()


# ----------------------------------------------------------------------------- item 13


def test_overlong_prompt_is_refused_by_name_or_skipped_and_counted(tmp_path: Path) -> None:
    from fgrpo.commands.inputs import fit_prompts
    from fgrpo.format.prompts import encode_prompt
    from fgrpo.models.tiny import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    short, long = make_toy_examples(3, pool_size=8, seed=0), make_toy_examples(1, pool_size=30, seed=5)
    path = tmp_path / "train.jsonl"
    write_jsonl(short + long, path)
    examples = read_jsonl(path)
    lengths = [len(encode_prompt(tok, ex, 10, 5)) for ex in examples]
    assert max(lengths[:3]) < lengths[3]
    context = max(lengths[:3]) + 8  # the short ones fit with 8 new tokens, the long one does not
    cfg = load_config(TrainConfig, None, [f"prompt_context={context}", "max_new_tokens=8"])
    with pytest.raises(DataError, match=rf"train\.jsonl:4: example 'toy-5-0': prompt is {lengths[3]} tokens; with "
                                        rf"max_new_tokens=8 it does not fit the model's context of {context} tokens"):
        fit_prompts(cfg, tok, None, {"train": examples}, 8, {})
    cfg.prompt_overflow = "skip"
    report: dict = {}
    kept = fit_prompts(cfg, tok, None, {"train": examples}, 8, report)["train"]
    assert [ex.id for ex in kept] == [ex.id for ex in short]
    assert report["prompt_overflow"]["train"] == {"skipped": 1, "kept": 3, "longest_prompt": lengths[3]}


def test_model_context_is_read_from_the_model() -> None:
    from fgrpo.data.splits import model_context
    from fgrpo.models.loading import load_model

    assert model_context(load_model("builtin:tiny-llama", tiny_hidden_size=32)) == 512


def test_train_and_dry_run_refuse_a_prompt_over_the_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fgrpo.commands.dry_run import dry_run

    data = toy_folder(tmp_path / "data")
    out = tmp_path / "out"
    code, err = cli(monkeypatch, capsys, "train", f"dataset={data}", f"output_dir={out}", "prompt_context=20", *QUICK)
    assert code == 2 and "train.jsonl:1: example 'toy-0-0': prompt is" in err and "prompt_overflow" in err, err
    assert not (out / "checkpoints").exists()
    lines: list[str] = []
    cfg = load_config(TrainConfig, None, [f"dataset={data}", "prompt_context=20", "max_new_tokens=8"])
    result = dry_run(cfg, echo=lines.append)
    assert result["over_context"] and "does NOT fit" in "\n".join(lines)
    assert all("| no (context) |" in line for line in lines if line.startswith("| ") and "GiB" not in line and "---" not in line
               and "strategy" not in line)
    assert any("6 of 6 measured training prompts" in n and "train.jsonl:1" in n for n in result["notes"])


def test_eval_skips_and_counts_overlong_prompts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fgrpo.format.prompts import encode_prompt
    from fgrpo.models.loading import load_model, load_tokenizer

    model_dir = tmp_path / "model"
    tok = load_tokenizer("builtin:tiny-llama")
    load_model("builtin:tiny-llama", tiny_hidden_size=32).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    data = toy_folder(tmp_path / "data")
    write_jsonl(make_toy_examples(2, pool_size=8, seed=2) + make_toy_examples(1, pool_size=30, seed=7), data / "test.jsonl")
    context = max(len(encode_prompt(tok, ex, 10, 5)) for ex in make_toy_examples(2, pool_size=8, seed=2)) + 4
    out = tmp_path / "eval"
    args = ["eval", f"model={model_dir}", f"dataset={data}", f"output_dir={out}", "max_new_tokens=4", "torch_threads=1",
            f"prompt_context={context}"]
    code, err = cli(monkeypatch, capsys, *args)
    assert code == 2 and "test.jsonl:3: example 'toy-7-0'" in err, err
    code, err = cli(monkeypatch, capsys, *args, "prompt_overflow=skip")
    assert code == 0 and "skipped 1 of 3 test example(s)" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data/prompt_overflow_skipped"] == 1 and metrics["num_examples"] == 2


# ----------------------------------------------------------------------------- item 14


def test_a_huge_bad_value_is_cut_in_the_message(tmp_path: Path) -> None:
    huge = "x" * 10_000_000
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, None, [f"learning_rate={huge}"])
    assert len(str(e.value)) < 300 and "10,000,000 characters" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, None, [f"{huge}=1"])
    assert len(str(e.value)) < 300
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(row(1, relevance={"a": huge}))])
    with pytest.raises(DataError) as d:
        read_jsonl(path)
    assert len(str(d.value)) < 300 and "d.jsonl:1: field 'relevance.a'" in str(d.value)
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(row(1, relevance={huge: 1}))])
    with pytest.raises(DataError) as d:
        read_jsonl(path)
    assert len(str(d.value)) < 300


# ----------------------------------------------------------------------------- item 15


@pytest.mark.parametrize("text", ["1e-5", "1e-06", "1E-5", "+2e-3", ".5e-4"])
def test_exponent_floats_are_numbers_on_the_command_line_and_in_yaml(tmp_path: Path, text: str) -> None:
    assert load_config(TrainConfig, None, [f"learning_rate={text}"]).learning_rate == float(text)
    path = tmp_path / "c.yaml"
    path.write_text(f"learning_rate: {text}\nsft_learning_rate: '{text}'\n")
    cfg = load_config(TrainConfig, path)
    assert cfg.learning_rate == float(text) and cfg.sft_learning_rate == float(text)


@pytest.mark.parametrize(("override", "key"), [
    ("toy_max_relevant=9", "toy_max_relevant"),
    ("toy_pool_size=0", "toy_pool_size"),
    ("toy_num_train=0", "toy_num_train"),
    ("learning_rate=-1e-5", "learning_rate"),
    ("eval_every=-1", "eval_every"),
    ("max_grad_norm=.nan", "max_grad_norm"),
    ("max_grad_norm=0", "max_grad_norm"),
    ("max_slate=0", "max_slate"),
    ("max_rank=0", "max_rank"),
    ("max_bad_steps=0", "max_bad_steps"),
    ("warmup_steps=-2", "warmup_steps"),
    ("adam_beta2=1", "adam_beta2"),
])
def test_bad_values_name_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"key '{key}'"):
        load_config(TrainConfig, None, [override])


@pytest.mark.parametrize("override", ["toy_max_relevant=9", "learning_rate=-1", "max_slate=0", "max_grad_norm=.nan"])
def test_sft_checks_its_values_too(override: str) -> None:
    with pytest.raises(ConfigError, match=rf"key '{override.split('=')[0]}'"):
        load_config(SFTConfig, None, [override])


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("max_steps: 5\ngroup_size: 4\nmax_steps: 7\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: line 3: key 'max_steps' is given twice \(first at line 1\)"):
        load_config(TrainConfig, path)


@pytest.mark.parametrize(("args", "message"), [
    (["model=/nonexistent/model"], "config error: key 'model': '/nonexistent/model': no such model folder"),
    (["toy_max_relevant=9"], "config error: defaults + command line: key 'toy_max_relevant'"),
    (["learning_rate=-1"], "key 'learning_rate' must be >= 0"),
    (["output_dir=pyproject.toml"], "key 'output_dir': 'pyproject.toml' is a file, not a folder"),
    (["output_dir=pyproject.toml/run"], "key 'output_dir': 'pyproject.toml/run' is under pyproject.toml, which is a file"),
])
def test_cli_config_errors_are_one_line(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    out = [] if any(a.startswith("output_dir") for a in args) else [f"output_dir={tmp_path / 'o'}"]
    code, err = cli(monkeypatch, capsys, "train", *QUICK, *out, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


# ----------------------------------------------------------------------------- item 16


@pytest.mark.parametrize(("code", "message"), [
    (errno.ENOSPC, "error: no space left on device writing {p}; what was written before is intact"),
    (errno.EROFS, "error: cannot write to {p}: read-only file system"),
    (errno.EACCES, "error: cannot write to {p}: permission denied"),
])
def test_disk_errors_are_one_line_naming_the_path(
    code: int, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import fgrpo.commands.setup as command  # every command saves its config there

    data = toy_folder(tmp_path / "data")
    target = tmp_path / "eval" / "config.yaml"

    def full(*args, **kwargs):
        raise OSError(code, "simulated", str(target))

    monkeypatch.setattr(command, "save_config", full)
    status, err = cli(monkeypatch, capsys, "eval", "method=random", f"dataset={data}", f"output_dir={tmp_path / 'eval'}")
    assert status == 1 and message.format(p=target) in err and len(err.strip().splitlines()) == 1, err


def test_torch_write_failure_says_no_space_and_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil
    from collections import namedtuple

    import torch

    real_save = torch.save

    def save(obj, f, *args, **kwargs):  # what torch's writer raises when the disk fills up
        if "step-000002" in str(f):
            raise RuntimeError("[enforce fail at inline_container.cc:603] . basic_ios::clear: iostream error")
        return real_save(obj, f, *args, **kwargs)

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9, 0))
    out = tmp_path / "out"
    args = [a for a in QUICK if a != "max_steps=1"]
    status, err = cli(monkeypatch, capsys, "train", f"output_dir={out}", *args, "max_steps=2", "toy_num_train=8")
    assert status == 1 and f"error: cannot write under {out}: no space left on device" in err, err
    assert (out / "checkpoints" / "step-000001" / "optimizer.pt").is_file()  # nothing lost


# ----------------------------------------------------------------------------- parser fuzz

FUZZ = settings(derandomize=True, max_examples=3000, deadline=None, database=None)
LABELS = [f"[i{k}]" for k in (7, 42, 181, 302, 1000, 5, 77, 9)]
PIECES = [SLATE_OPEN, SLATE_CLOSE, RANK_OPEN, RANK_CLOSE, ">", " > ", " ", ",", "\n", "[", "]", "<", "/", "x", "é",
          "[0]", "[-1]", "[]", "[ 3]", "[99999999999]", "[i]", "[i-1]", "[i999]", "[I7]", "<SLATE", "RANK>"]


def check(text: str, n: int, max_slate: int, max_rank: int, labels: list[str] | None) -> None:
    p = parse_completion(text, n, max_slate, max_rank, labels)
    assert set(p.errors) <= set(ERROR_KINDS) and len(set(p.errors)) == len(p.errors), p.errors
    assert p.valid == (not p.errors), (text, p)  # invalid exactly when an error is listed
    assert p.slate_valid or p.errors, text
    assert not p.rank_valid or p.slate_valid, text
    for items in (p.slate, p.ranking):  # in range and distinct, also best effort for invalid phases
        assert all(1 <= k <= n for k in items) and len(set(items)) == len(items), (text, p)
    if p.slate_valid:
        assert 1 <= len(p.slate) <= max_slate
    if p.rank_valid:
        assert 1 <= len(p.ranking) <= max_rank and set(p.ranking) <= set(p.slate), (text, p)
    close = text.find(SLATE_CLOSE)
    assert p.slate_end == (None if close < 0 else close + len(SLATE_CLOSE))


@FUZZ
@given(
    parts=st.lists(st.one_of(st.sampled_from(PIECES), st.integers(0, 12).map(lambda k: f"[{k}]"), st.text(max_size=3)), max_size=30),
    n=st.integers(0, 12), max_slate=st.integers(0, 10), max_rank=st.integers(0, 10),
)
def test_fuzz_parser_numbers(parts: list[str], n: int, max_slate: int, max_rank: int) -> None:
    check("".join(parts), n, max_slate, max_rank, None)


@FUZZ
@given(
    parts=st.lists(st.one_of(st.sampled_from(PIECES + LABELS), st.integers(0, 9).map(lambda k: f"[{k}]"), st.text(max_size=3)), max_size=30),
    n=st.integers(1, len(LABELS)), max_slate=st.integers(0, 10), max_rank=st.integers(0, 10),
)
def test_fuzz_parser_item_tokens(parts: list[str], n: int, max_slate: int, max_rank: int) -> None:
    check("".join(parts), n, max_slate, max_rank, LABELS[:n])
