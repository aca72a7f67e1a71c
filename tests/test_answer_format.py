"""A model folder carries its answer format (fgrpo.json): written by the commands that save
a model, read by those that load one; a contradicting value is an error naming key and file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fgrpo.commands.eval import run_eval
from fgrpo.commands.sft import run_sft
from fgrpo.config import ConfigError
from fgrpo.config.commands import EvalConfig, SFTConfig, TrainConfig
from fgrpo.data.toy import make_toy_examples
from fgrpo.evaluation.evaluate import prediction_row
from fgrpo.models.answer_format import FORMAT_FILE, read_answer_format
from fgrpo.ranker import Ranker

FOUR_RANKED = "<SLATE>[1] [2] [3] [4]</SLATE><RANK>[1] > [2] > [3] > [4]</RANK>"


@pytest.fixture(scope="module")
def rank3_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sft3")
    cfg = SFTConfig(output_dir=str(out), max_steps=1, batch_size=2, toy_num_train=8, toy_num_valid=0,
                    max_slate=4, max_rank=3, slate_size=4, torch_threads=1, log_every=1)  # fmt: skip
    return run_sft(cfg)


def test_sft_writes_the_format_it_trained_with(rank3_model: Path) -> None:
    record = json.loads((rank3_model / FORMAT_FILE).read_text())
    assert record == {"max_slate": 4, "max_rank": 3, "prompt_style": "standard", "labels": "numbers",
                      "max_new_tokens": 4 * (4 + 3) + 16, "format_version": 1}  # fmt: skip


def test_ranker_parses_with_the_folders_limits(rank3_model: Path) -> None:
    ranker = Ranker.from_pretrained(rank3_model)
    assert (ranker.max_slate, ranker.max_rank, ranker.max_new_tokens) == (4, 3, 44)
    ex = make_toy_examples(1, pool_size=8, seed=0)[0]
    row = prediction_row(ex, FOUR_RANKED, ranker.max_slate, ranker.max_rank, None)
    assert row["slate_valid"] is True and row["rank_valid"] is False  # 4 ranked > the folder's 3
    assert prediction_row(ex, FOUR_RANKED, 4, 5, None)["rank_valid"] is True  # the old hard-coded 5 would accept it
    with pytest.raises(ConfigError, match=rf"key 'max_rank' is 5, but .*{FORMAT_FILE} says .*max_rank=3"):
        Ranker.from_pretrained(rank3_model, max_rank=5)


def test_constrained_unset_follows_the_folders_labels(rank3_model: Path, tmp_path: Path) -> None:
    """constrained=null: off for a folder trained on number labels, on for item-token labels
    (id-tiny writes valid answers only under the constraint); an explicit value wins."""
    from fgrpo.models.answer_format import default_constrained

    assert Ranker.from_pretrained(rank3_model).constrained is False
    assert Ranker.from_pretrained(rank3_model, constrained=True).constrained is True
    assert default_constrained(None) is False
    assert default_constrained({"labels": "numbers"}) is False and default_constrained({"labels": "item_tokens"}) is True
    items = tmp_path / "items"
    items.mkdir()
    for f in rank3_model.iterdir():
        if f.is_file():
            (items / f.name).write_bytes(f.read_bytes())
    record = json.loads((items / FORMAT_FILE).read_text())
    (items / FORMAT_FILE).write_text(json.dumps({**record, "labels": "item_tokens"}))
    assert Ranker.from_pretrained(items, max_slate=4).constrained is True
    assert Ranker.from_pretrained(items, constrained=False).constrained is False


def test_eval_refuses_limits_that_contradict_the_folder(rank3_model: Path, tmp_path: Path) -> None:
    common = {"model": str(rank3_model), "dataset": "toy", "limit": 2, "max_new_tokens": 8, "torch_threads": 1}
    with pytest.raises(ConfigError, match=rf"key 'max_rank' is 5, but {re.escape(str(rank3_model / FORMAT_FILE))} says"):
        run_eval(EvalConfig(**common, max_slate=4, output_dir=str(tmp_path / "e5")))  # max_rank: the default 5
    with pytest.raises(ConfigError, match=r"key 'prompt_style' is 'zeroshot'"):
        run_eval(EvalConfig(**common, max_slate=4, max_rank=3, method="zeroshot", output_dir=str(tmp_path / "zs")))
    metrics = run_eval(EvalConfig(**common, max_slate=4, max_rank=3, output_dir=str(tmp_path / "e3")))
    assert metrics["num_examples"] == 2


def test_train_refuses_a_model_trained_with_other_limits(rank3_model: Path, tmp_path: Path) -> None:
    from fgrpo.commands.train import setup

    cfg = TrainConfig(model=str(rank3_model), output_dir=str(tmp_path), toy_num_train=8, toy_num_valid=0,
                      max_slate=4, max_rank=5, torch_threads=1, sft_slate_size=4, tensorboard=False)  # fmt: skip
    with pytest.raises(ConfigError, match=rf"key 'max_rank' is 5, but {re.escape(str(rank3_model / FORMAT_FILE))} says"):
        setup(cfg)


def test_a_folder_without_the_file_keeps_the_defaults(tmp_path: Path) -> None:
    from fgrpo.models.tiny import build_tiny_llama, build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    build_tiny_llama(len(tok), 32, 1).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    assert read_answer_format(tmp_path) is None
    ranker = Ranker.from_pretrained(tmp_path, max_rank=3)
    assert (ranker.max_slate, ranker.max_rank, ranker.max_new_tokens) == (10, 3, 96)


def test_a_newer_format_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / FORMAT_FILE).write_text(json.dumps({"format_version": 2}))
    with pytest.raises(ConfigError, match="format_version 2"):
        read_answer_format(tmp_path)
