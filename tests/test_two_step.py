"""Zero-shot prompting, two-step decoding (select, then rank the selection) and Decoupled SFT.

Prompts by hand; constrained phases by hand; the two answers join into one completion the
shared parser scores, its ranking inside its slate; the selector and ranker SFT targets by
hand; the decoupled pipeline trained a few steps and evaluated end to end; the compare rows.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fgrpo.commands.eval import run_eval
from fgrpo.config.commands import EvalConfig
from fgrpo.data.schema import Candidate, Example
from fgrpo.data.toy import make_toy_examples
from fgrpo.evaluation.two_step import join_answers, predict_two_step, slate_answer
from fgrpo.format.completion import (
    parse_completion,
    render_completion,
    render_ranking,
    render_slate,
)
from fgrpo.format.constrained import INVALID, FormatConstraint, format_token_ids, slate_prefix_state
from fgrpo.format.prompts import encode_prompt, prompt_text
from fgrpo.models.tiny import build_tiny_llama
from fgrpo.trainer.sft import encode_sft_example, sft_target


def _movie_example() -> Example:
    pool = [Candidate(f"m{k}", f"Movie {k} (1990)") for k in range(1, 6)]
    return Example(id="u1", query="Heat (1995)\nToy Story (1995)", candidates=pool, relevance={"m2": 2, "m5": 1}, task="movies")


# ------------------------------------------------------------------ prompts


def test_standard_prompt_is_the_one_models_are_trained_on() -> None:
    text = prompt_text(_movie_example(), 10, 5)
    assert text == (
        "You are a movie recommender. The user watched these movies, oldest first:\nHeat (1995)\nToy Story (1995)\n\n"
        "Candidates:\n[1] Movie 1 (1990)\n[2] Movie 2 (1990)\n[3] Movie 3 (1990)\n[4] Movie 4 (1990)\n[5] Movie 5 (1990)\n\n"
        "Select up to 10 candidates that are the movies the user is most likely to watch next, then rank up to 5 of "
        "them, best first. Refer to candidates by their number. Answer exactly in this form: "
        "<SLATE>[i] [j] ...</SLATE><RANK>[i] > [j] > ...</RANK>"
    )


def test_rank_prompt_shows_only_the_slate_in_pool_order_with_pool_numbers() -> None:
    ex = _movie_example()
    for style in ("standard", "zeroshot"):
        text = prompt_text(ex, 10, 3, phase="rank", slate=[4, 2], style=style)
        pool = text.split("Candidates:\n")[1].split("\n\n")[0]
        assert pool == "[2] Movie 2 (1990)\n[4] Movie 4 (1990)"
        assert "<RANK>" in text and "<SLATE>" not in text and "up to 3" in text
    toy = make_toy_examples(1, pool_size=6, seed=0)[0]
    text = prompt_text(toy, 10, 5, phase="rank", slate=[5, 1])
    assert text.endswith(f"{toy.candidates[0].text} [1] {toy.candidates[4].text} [5] answer :")


def test_zeroshot_prompts_spell_out_the_format_with_a_parseable_example() -> None:
    ex = _movie_example()
    both = prompt_text(ex, 10, 5, style="zeroshot")
    example = both.splitlines()[-1]
    assert parse_completion(example, 11, 10, 5).valid  # the worked example is itself a valid answer
    assert "Step 1" in both and "Step 2" in both and "<SLATE>" in both and "</RANK>" in both
    slate = prompt_text(ex, 10, 5, phase="slate", style="zeroshot")
    assert slate.splitlines()[-1] == "<SLATE>[4] [11] [2]</SLATE>" and "<RANK>" not in slate
    rank = prompt_text(ex, 10, 5, phase="rank", slate=[1, 3], style="zeroshot")
    assert rank.splitlines()[-1] == "<RANK>[11] > [4] > [2]</RANK>" and "</RANK>" in rank.splitlines()[-2]


def test_prompt_arguments_are_checked() -> None:
    ex = _movie_example()
    with pytest.raises(ValueError, match="slate"):
        prompt_text(ex, 10, 5, phase="rank")
    with pytest.raises(ValueError, match="slate"):
        prompt_text(ex, 10, 5, phase="slate", slate=[1])
    with pytest.raises(ValueError, match="outside 1..5"):
        prompt_text(ex, 10, 5, phase="rank", slate=[6])
    with pytest.raises(ValueError, match="style"):
        prompt_text(ex, 10, 5, style="chatty")  # type: ignore[arg-type]


def test_chat_template_wraps_each_phase(bpe_tok) -> None:
    ex = _movie_example()
    for phase, slate in (("both", None), ("slate", None), ("rank", [2, 4])):
        ids = encode_prompt(bpe_tok, ex, 10, 5, phase=phase, slate=slate, style="zeroshot")
        text = bpe_tok.decode(ids)
        assert text.startswith("<|im_start|>system\nYou select and rank candidates.<|im_end|>")
        assert text.endswith("<|im_start|>assistant\n")


# ------------------------------------------------------------------ constrained phases


@pytest.mark.parametrize(
    "text, ok",
    [
        ("<SLATE>[2] [5]", True),
        ("<SLATE>[2] [5]</SL", True),
        ("<SLATE>[2] [5]</SLATE>", True),
        ("<SLATE>[2] [5]</SLATE> ", True),
        ("<SLATE>[2] [5]</SLATE><", False),  # step 1 ends at </SLATE>
        ("<SLATE>[2] [2", False),
        ("<SLATE>[13", False),
    ],
)
def test_slate_phase_prefixes_by_hand(text: str, ok: bool) -> None:
    assert (slate_prefix_state(text, 12, 10) != INVALID) == ok


def test_rank_phase_is_checked_against_the_given_slate(tiny_tok) -> None:
    c = FormatConstraint(tiny_tok, [12, 12], 10, 5, phase="rank", slates=[[2, 5], [7]])
    assert c.state("<RANK>[5] > [2]</RANK>", 0) and c.state(" <RANK>[7]", 1)
    assert not c.state("<RANK>[7", 0) and not c.state("<RANK>[5] > [5", 0) and not c.state("<SLATE>", 0)
    with pytest.raises(ValueError, match="slate"):
        FormatConstraint(tiny_tok, [12], 10, 5, phase="rank")


def test_split_phase_format_tokens_cover_each_answer_alone(bpe_tok) -> None:
    rng = random.Random(0)
    tokens = set(format_token_ids(bpe_tok, 20, split_phases=True))
    for _ in range(50):
        slate = rng.sample(range(1, 21), rng.randint(1, 10))
        ranking = rng.sample(slate, rng.randint(1, min(5, len(slate))))
        for text in (render_slate(slate), render_ranking(ranking)):
            assert set(bpe_tok(text, add_special_tokens=False)["input_ids"]) <= tokens, text


# ------------------------------------------------------------------ two-step decoding


def test_slate_answer_and_join_by_hand() -> None:
    assert slate_answer("<SLATE>[3] [7]</SLATE><RA") == "<SLATE>[3] [7]</SLATE>"
    assert slate_answer("no slate") == "no slate"
    joined = join_answers("<SLATE>[3] [7]</SLATE>", "\n<RANK>[7] > [3]</RANK>")
    p = parse_completion(joined, 8, 10, 5)
    assert p.valid and p.slate == [3, 7] and p.ranking == [7, 3]
    skipped = parse_completion(join_answers("<SLATE>[3] [3]</SLATE>", None), 8, 10, 5)
    assert not skipped.valid and "missing_rank_tags" in skipped.errors


def _tiny_model(tok, seed: int = 0):
    torch.manual_seed(seed)
    return build_tiny_llama(len(tok), hidden_size=32, num_layers=1, seed=seed).eval()


def test_constrained_two_step_joins_into_valid_completions_ranking_inside_slate(tiny_tok) -> None:
    selector, ranker = _tiny_model(tiny_tok, 0), _tiny_model(tiny_tok, 1)  # untrained: free decoding is garbage
    examples = make_toy_examples(12, pool_size=8, max_relevant=3, seed=5)
    preds = predict_two_step(selector, tiny_tok, ranker, tiny_tok, examples, 4, 3, 40, 5, progress=False, constrained=True)
    for ex, p in zip(examples, preds, strict=True):
        assert p["slate_valid"] and p["rank_valid"], p
        assert 1 <= len(p["slate"]) <= 4 and 1 <= len(p["ranking"]) <= 3
        assert set(p["ranking"]) <= set(p["slate"])
        # the completion is the selector's slate answer followed by the ranker's answer
        assert p["completion"] == slate_answer(p["selector_completion"]) + p["ranker_completion"]
        assert parse_completion(p["completion"], ex.num_candidates, 4, 3).ranking == p["ranking"]
    free = predict_two_step(selector, tiny_tok, ranker, tiny_tok, examples, 4, 3, 40, 5, progress=False)
    assert not all(p["slate_valid"] for p in free)  # the constraint did the work
    for p in free:  # no valid slate: nothing to rank, and the output counts as invalid
        assert (p["ranker_completion"] is None) == (not p["slate_valid"])
        assert p["rank_valid"] <= p["slate_valid"]


# ------------------------------------------------------------------ Decoupled SFT targets


def test_selector_and_ranker_sft_targets_by_hand(tiny_tok) -> None:
    ex = _movie_example()  # relevant: 2 (grade 2), 5 (grade 1)
    slate, ranking = sft_target(ex, 3, 2, np.random.default_rng(0), filler_order=lambda e: [4, 1, 3], slate_order="ascending")
    assert (slate, ranking) == ([2, 4, 5], [2, 5])  # relevant + first filler, ascending; relevant ranked by grade

    def split(target: str) -> tuple[list[int], str]:
        ids, labels = encode_sft_example(tiny_tok, ex, slate, ranking, 10, 2, target)
        prompt = [t for t, lab in zip(ids, labels, strict=True) if lab == -100]
        completion = [t for t, lab in zip(ids, labels, strict=True) if lab != -100]
        assert completion[-1] == tiny_tok.eos_token_id
        return prompt, tiny_tok.decode(completion[:-1]).replace(" ", "")

    prompt, text = split("slate")
    assert text == "<SLATE>[2][4][5]</SLATE>" and prompt == encode_prompt(tiny_tok, ex, 10, 2, phase="slate")
    prompt, text = split("rank")
    assert text == "<RANK>[2]>[5]</RANK>" and prompt == encode_prompt(tiny_tok, ex, 10, 2, phase="rank", slate=[2, 4, 5])
    prompt, text = split("both")
    assert text == render_completion([2, 4, 5], [2, 5]).replace(" ", "") and prompt == encode_prompt(tiny_tok, ex, 10, 2)
    with pytest.raises(ValueError, match="target"):
        encode_sft_example(tiny_tok, ex, slate, ranking, 10, 2, "slates")


# ------------------------------------------------------------------ end to end


def _save_tiny(tok, folder: Path) -> str:
    _tiny_model(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def test_eval_zeroshot_and_two_step_methods_on_a_model_folder(tiny_tok, tmp_path: Path) -> None:
    model = _save_tiny(tiny_tok, tmp_path / "m")
    common = {"model": model, "dataset": "toy", "limit": 8, "max_new_tokens": 30, "constrained": True, "torch_threads": 1}
    one = run_eval(EvalConfig(**common, method="zeroshot", output_dir=str(tmp_path / "zs")))
    two = run_eval(EvalConfig(**common, method="two_step", output_dir=str(tmp_path / "zs2")))
    assert one["format/valid_rate"] == 1.0 and two["format/valid_rate"] == 1.0 and two["num_examples"] == 8
    rows = [json.loads(line) for line in (tmp_path / "zs2" / "predictions.jsonl").read_text().splitlines()]
    assert all(set(r["ranking"]) <= set(r["slate"]) and r["selector_completion"] for r in rows)
    with pytest.raises(ValueError, match="two_step"):
        EvalConfig(method="model", selector=model).validate()
    with pytest.raises(ValueError, match="zeroshot"):
        EvalConfig(method="zeroshot", prompt_style="standard").validate()


def test_decoupled_sft_trains_both_halves_and_evaluates_end_to_end(tmp_path: Path) -> None:
    from fgrpo.commands.sft import run_sft
    from fgrpo.config.commands import SFTConfig

    common = {"model": "builtin:tiny-llama", "tiny_hidden_size": 32, "tiny_num_layers": 1, "toy_num_train": 200,
              "max_steps": 120, "batch_size": 8, "learning_rate": 0.003, "warmup_steps": 0, "slate_size": 3,
              "slate_order": "ascending", "torch_threads": 1, "log_every": 1}  # fmt: skip
    folders = {t: run_sft(SFTConfig(**common, target=t, output_dir=str(tmp_path / t))) for t in ("slate", "rank")}
    for t in folders:
        losses = [json.loads(line)["sft/loss"] for line in (tmp_path / t / "metrics.jsonl").read_text().splitlines()]
        assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), (t, losses)  # each half learns its target
    cfg = EvalConfig(method="two_step", selector=str(folders["slate"]), ranker=str(folders["rank"]), dataset="toy",
                     limit=16, max_new_tokens=30, output_dir=str(tmp_path / "eval"), torch_threads=1)  # fmt: skip
    metrics = run_eval(cfg)
    assert metrics["num_examples"] == 16 and 0.0 <= metrics["NDCG@5"] <= 1.0
    rows = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert sum(r["slate_valid"] for r in rows) > 0  # the trained selector writes slates the ranker then sees
    for r in rows:
        if r["rank_valid"]:
            assert set(r["ranking"]) <= set(r["slate"])
            assert all(f"[{k}]" in r["completion"].split("</SLATE>")[0] for k in r["ranking"])


# ------------------------------------------------------------------ compare rows


TINY_BASE = {"model": "builtin:tiny-llama", "tiny_hidden_size": 32, "tiny_num_layers": 1, "max_steps": 2, "group_size": 2,
             "prompts_per_step": 2, "max_new_tokens": 24, "toy_num_train": 50, "toy_num_valid": 8, "tensorboard": False,
             "torch_threads": 1}  # fmt: skip


def _experiment(tmp_path: Path, methods: list[dict]) -> Path:
    path = tmp_path / "experiment.yaml"
    exp = {"output_dir": str(tmp_path / "out"), "seeds": [0, 1], "base": TINY_BASE, "eval": {"limit": 8}, "methods": methods}
    path.write_text(yaml.safe_dump(exp, sort_keys=False))
    return path


METHODS = [
    {"name": "sft", "kind": "sft", "overrides": {"max_steps": 5, "slate_size": 3}},
    {"name": "decoupled", "kind": "decoupled_sft", "overrides": {"max_steps": 5, "slate_size": 3}},
    {"name": "zs", "kind": "zeroshot", "overrides": {"model": "some/instruct-model"}},
    {"name": "zs-2step", "kind": "zeroshot", "overrides": {"model": "some/instruct-model", "method": "two_step"}},
]


def test_compare_expands_the_new_kinds(tmp_path: Path) -> None:
    from fgrpo.experiments.expand import expand_runs
    from fgrpo.experiments.spec import budget_text, load_compare_config

    runs = expand_runs(load_compare_config(_experiment(tmp_path, METHODS)))
    dec = [r for r in runs if r.method == "decoupled"]
    assert [r.seed for r in dec] == [0, 1]  # trained: once per seed
    d = dec[1]
    sft = next(r for r in runs if r.method == "sft" and r.seed == 1)
    assert d.train_cfg.target == "slate" and d.ranker_cfg.target == "rank"
    for key in ("max_steps", "batch_size", "learning_rate", "slate_size", "seed", "model"):  # the same budget each
        assert getattr(d.train_cfg, key) == getattr(d.ranker_cfg, key) == getattr(sft.train_cfg, key), key
    assert d.eval_cfg.method == "two_step" and d.producer
    assert d.eval_cfg.selector == str(d.run_dir / "train" / "model") and d.eval_cfg.ranker == str(d.run_dir / "train_ranker" / "model")
    assert [c for c, _, _ in d.train_stages()] == ["sft", "sft"]
    assert budget_text(d.budget()) == "2 models × (5 SFT steps × 16 = 80 examples)"
    zs = [r for r in runs if r.method.startswith("zs")]
    assert [(r.method, r.eval_cfg.method, r.eval_cfg.prompt_style) for r in zs] == [
        ("zs", "zeroshot", "zeroshot"), ("zs-2step", "two_step", "zeroshot")]  # fmt: skip
    assert all(r.command is None and r.producer and r.eval_cfg.model == "some/instruct-model" for r in zs)  # once: greedy


@pytest.mark.parametrize(
    "method, needle",
    [
        ({"name": "d", "kind": "decoupled_sft", "overrides": {"target": "rank"}}, "target"),
        ({"name": "z", "kind": "zeroshot", "overrides": {"method": "bm25"}}, "zeroshot"),
    ],
)
def test_compare_rejects_bad_new_rows(tmp_path: Path, method: dict, needle: str) -> None:
    from fgrpo.config import ConfigError
    from fgrpo.experiments.spec import load_compare_config

    with pytest.raises(ConfigError, match=needle):
        load_compare_config(_experiment(tmp_path, [method]))


def test_compare_dry_run_lists_the_new_rows(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fgrpo.cli import app

    dry = CliRunner().invoke(app, ["compare", str(_experiment(tmp_path, METHODS)), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "6 runs" in dry.output and "fgrpo sft x2 + eval" in dry.output
    assert "method=zeroshot" in dry.output and "method=two_step" in dry.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_compare_runs_a_decoupled_sft_row(tmp_path: Path) -> None:
    from fgrpo.experiments.runner import run_compare
    from fgrpo.experiments.spec import load_compare_config

    cfg = load_compare_config(_experiment(tmp_path, [METHODS[1]]), ["seeds=[0]"])
    log: list[str] = []
    outcome = run_compare(cfg, echo=log.append)
    assert not outcome.failures, log
    run = Path(cfg.output_dir) / "runs" / "decoupled" / "seed0"
    assert (run / "sft.log").is_file() and (run / "sft_ranker.log").is_file()
    assert (run / "train" / "model" / "config.json").is_file() and (run / "train_ranker" / "model" / "config.json").is_file()
    rec = json.loads((run / "metrics.json").read_text())
    assert rec["train_s"] > 0 and rec["metrics"]["num_examples"] == 8
    assert "2 models ×" in outcome.files["results.md"].read_text()


def test_shipped_llm_baselines_experiment_loads() -> None:
    from fgrpo.experiments.expand import expand_runs
    from fgrpo.experiments.spec import load_compare_config

    runs = expand_runs(load_compare_config(Path(__file__).resolve().parents[1] / "configs" / "compare_ml100k_llm_baselines.yaml"))
    kinds = {r.method: r.kind for r in runs}
    assert kinds == {"zeroshot": "zeroshot", "zeroshot-two-step": "zeroshot", "sft": "sft", "decoupled-sft": "decoupled_sft",
                     "popularity": "scorer", "random": "scorer"}  # fmt: skip
    dec, sft = (next(r for r in runs if r.method == m and r.seed == 0) for m in ("decoupled-sft", "sft"))
    assert dec.train_cfg.max_steps == dec.ranker_cfg.max_steps == sft.train_cfg.max_steps  # each half: the sft budget
