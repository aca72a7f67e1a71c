"""The ranker in use: `fgrpo rank` / Ranker.from_pretrained read the answer format from the
model folder and take eval's decoding keys; JSONL in and out with ids; an empty pool's
error; a hub-ready model card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fgrpo.commands.rank import read_examples
from fgrpo.config import ConfigError
from fgrpo.data.schema import DataError

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


def test_input_forms_ids_and_a_bom() -> None:
    lines = ['\ufeff{"query": "q", "candidates": ["first", "second"]}',
             '{"id": "e2", "task": "passages", "query": "q2", "candidates": [{"id": "p7", "text": "a"}], "relevance": {"p7": 1}}']
    a, b = read_examples(lines, "in.jsonl")
    assert (a.id, [c.id for c in a.candidates], [c.text for c in a.candidates], a.relevance) == ("1", ["1", "2"], ["first", "second"], {})
    assert (b.id, b.task, b.relevance) == ("e2", "passages", {"p7": 1})


@pytest.mark.parametrize(("line", "message"), [
    ('{"id": "x", "query": "q", "candidates": []}', "in.jsonl:1: field 'candidates' must be a non-empty list (the pool to rank)"),
    ('{"id": "x", "query": "q"}', "in.jsonl:1: field 'candidates' must be a non-empty list (the pool to rank); it is missing"),
    ('{"id": "x", "query": "q", "candidates": [{"text": "a"}]}', "in.jsonl:1: field 'candidates[0]' must be an object with 'id' and 'text'"),
    ('{"id": "x", "candidates": ["a"]}', "in.jsonl:1: field 'query' is missing"),
])
def test_bad_input_names_line_and_field(line: str, message: str) -> None:
    with pytest.raises(DataError) as e:
        read_examples([line], "in.jsonl")
    assert str(e.value) == message
    assert "relevance" not in str(e.value)


def test_an_empty_input_is_an_error() -> None:
    with pytest.raises(DataError, match="no example to rank"):
        read_examples(["", "  "], "in.jsonl")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model folder as fgrpo writes one (weights, tokenizer, fgrpo.json, card)."""
    from fgrpo.config.commands import SFTConfig
    from fgrpo.models.answer_format import answer_format, write_answer_format
    from fgrpo.models.card import write_model_card
    from fgrpo.models.loading import load_model, load_tokenizer

    out = tmp_path_factory.mktemp("ranker") / "run" / "model"
    tok = load_tokenizer("builtin:tiny-llama")
    model = load_model("builtin:tiny-llama", "float32", 0, 32, 1)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    record = answer_format(tok, 4, 2, "standard", 20)
    write_answer_format(out, record)
    write_model_card(out, SFTConfig(dataset="toy", max_slate=4, max_rank=2), "supervised warm start (fgrpo sft)",
                     metrics={"step": 3, "sft/loss": 1.25}, answer=record)
    return out


def test_from_pretrained_reads_the_format_and_takes_eval_keys(folder: Path) -> None:
    from fgrpo import Ranker

    r = Ranker.from_pretrained(folder, threads=1)
    assert (r.max_slate, r.max_rank, r.max_new_tokens, r.prompt_style, r.constrained) == (4, 2, 20, "standard", False)
    r = Ranker.from_pretrained(folder, max_new_tokens=9, constrained=True)
    assert (r.max_new_tokens, r.constrained) == (9, True)
    with pytest.raises(ConfigError, match="key 'max_slate' is 10, but .*fgrpo.json says the model was trained with max_slate=4"):
        Ranker.from_pretrained(folder, max_slate=10)
    with pytest.raises(ValueError, match="the candidate pool is empty"):
        r.rank("q", [])


def test_rank_jsonl_in_and_out_with_ids(folder: Path, tmp_path: Path) -> None:
    rows = [{"id": "u1", "query": "pick", "candidates": [{"id": "a", "text": "cat"}, {"id": "b", "text": "dog"},
                                                         {"id": "c", "text": "fish"}]},
            {"query": "pick", "candidates": ["x", "y"]}]
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = subprocess.run([sys.executable, "-m", "fgrpo", "rank", "--model", str(folder), "--input", str(src), "--output",
                           str(dst), "constrained=true", "max_new_tokens=16", "torch_threads=1", "batch_size=2"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"done: 2 example(s) ranked -> {dst}" in proc.stdout
    assert "[rank] example 2/2 (100%)" in proc.stderr  # a progress line: stderr is not a terminal
    out = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [o["id"] for o in out] == ["u1", "2"]
    assert set(out[0]) == {"id", "slate", "ranking", "valid", "errors", "completion"}
    for o, pool in zip(out, (["a", "b", "c"], ["1", "2"]), strict=True):
        assert o["valid"] and o["slate"] and set(o["slate"]) <= set(pool) and set(o["ranking"]) <= set(o["slate"])


def test_rank_cli_refuses_an_empty_pool_and_unknown_keys(folder: Path) -> None:
    run = lambda *args, stdin="": subprocess.run([sys.executable, "-m", "fgrpo", "rank", "--model", str(folder), *args],  # noqa: E731
                                                 cwd=REPO, capture_output=True, text=True, timeout=300, env=ENV, input=stdin)
    proc = run(stdin='{"id": "x", "query": "q", "candidates": []}\n')
    assert proc.returncode == 2 and "<stdin>:1: field 'candidates' must be a non-empty list (the pool to rank)" in proc.stderr, proc.stderr
    proc = run("max_new_tokns=3")
    assert proc.returncode == 2 and "max_new_tokns" in proc.stderr


def test_model_card_is_hub_ready(folder: Path) -> None:
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["library_name"] == "transformers" and "fgrpo" in meta["tags"]
    assert meta["datasets"] == ["fgrpo-toy"] and meta["metrics"] == ["ndcg", "recall", "mrr"]
    for needle in ("## Data", "built-in synthetic toy task", "## Metrics", "| sft/loss | 1.2500 |", "## Answer format",
                   "slate of at most 4 candidates, ranking of at most 2", "prompt style: `standard`", "Ranker.from_pretrained"):
        assert needle in text, needle


def test_model_card_states_a_prepared_folder(tmp_path: Path) -> None:
    from fgrpo.models.card import model_card

    data = tmp_path / "mydata"
    data.mkdir()
    (data / "manifest.json").write_text(json.dumps({"dataset": "ml100k", "task": "movies", "pool_size": 20,
                                                    "counts": {"train": 10, "valid": 2, "test": 3}}))
    text = model_card({"model": "HuggingFaceTB/SmolLM2-135M-Instruct", "dataset": str(data)}, "fgrpo (fgrpo train)")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["datasets"] == ["ml100k"] and meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "- examples: train 10, valid 2, test 3" in text and "- task: `movies`" in text
    plain = tmp_path / "own"
    plain.mkdir()
    (plain / "train.jsonl").write_text('{"a": 1}\n{"a": 2}\n\n')
    assert "- examples: train 2" in model_card({"model": "builtin:tiny-llama", "dataset": str(plain)}, "x")
