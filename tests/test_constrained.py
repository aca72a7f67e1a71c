"""Constrained decoding: the prefix checker by hand, and every constrained output valid."""

from __future__ import annotations

import random

import pytest
import torch

from fgrpo.format.completion import parse_completion, render_completion
from fgrpo.format.constrained import FormatConstraint, format_token_ids, is_valid_prefix
from fgrpo.format.spans import decode_completions
from fgrpo.models.tiny import build_tiny_llama
from fgrpo.rollout.engine import generate


@pytest.mark.parametrize(
    "text, ok",
    [
        ("", True),
        ("<SL", True),
        (" <SLATE>", True),
        ("<SLATE>[", True),
        ("<SLATE>[1", True),  # [1] or [10]..[12]
        ("<SLATE>[0", False),  # no leading zero
        ("<SLATE>[13", False),  # N = 12
        ("<SLATE>[3] [3", False),  # 3 used, no 30s in 1..12
        ("<SLATE>[1] [1", True),  # [10], [11], [12] remain
        ("<SLATE>[1] [1]", False),  # duplicate
        ("<SLATE></SLATE>", False),  # empty slate
        ("<SLATE>[2] [5]</SLATE><RANK>[5] > [2]", True),
        ("<SLATE>[2] [5]</SLATE><RANK>[5] > [2] >", False),  # slate exhausted
        ("<SLATE>[2] [5]</SLATE><RANK>[7", False),  # not in the slate
        ("<SLATE>[2] [5]</SLATE><RANK>[5] > [5", False),  # repeated
        ("<SLATE>[2] [5]</SLATE><RANK>[5]</RA", True),
        ("<SLATE>[2] [5]</SLATE><RANK>[5]</RANK>", True),
        ("<SLATE>[2] [5]</SLATE><RANK>[5]</RANK><", False),  # a token that runs past the end
        ("<SLATE>[2] [5]</SLATE><RANK></RANK>", False),  # empty ranking
        ("<SLATE>[2]  [5]", False),  # one whitespace per gap at most
        ("<SLATE> [2] [5] </SLATE> <RANK> [5] > [2] </RANK>", True),  # word-level decode
        ("hello", False),
        ("<SLATE>[1] [2] [3]", True),
        ("<SLATE>[1] [2] [3] [", False),  # max_slate = 3
        ("<SLATE>[1] [2] [3]</SLATE><RANK>[1] > [2] >", False),  # max_rank = 2
    ],
)
def test_valid_prefix_by_hand(text: str, ok: bool) -> None:
    assert is_valid_prefix(text, num_candidates=12, max_slate=3 if "[3]" in text else 10, max_rank=2 if "[3]" in text else 5) == ok


def test_every_prefix_of_a_valid_completion_is_valid() -> None:
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 30)
        slate = rng.sample(range(1, n + 1), rng.randint(1, min(n, 10)))
        ranking = rng.sample(slate, rng.randint(1, min(len(slate), 5)))
        text = render_completion(slate, ranking)
        assert all(is_valid_prefix(text[:i], n, 10, 5) for i in range(len(text) + 1)), text


def test_constrained_greedy_outputs_of_an_untrained_model_are_all_valid(tiny_tok) -> None:
    torch.manual_seed(0)
    model = build_tiny_llama(len(tiny_tok), hidden_size=32, num_layers=1).eval()  # random: free decoding is garbage
    rng = random.Random(1)
    prompts = [[rng.randrange(5, len(tiny_tok)) for _ in range(rng.randint(3, 9))] for _ in range(6)]
    sizes = [8, 3, 12, 1, 20, 5]
    free = generate(model, tiny_tok, prompts, 1, 60, temperature=0.0)
    constrained = generate(
        model, tiny_tok, prompts, 1, 60, temperature=0.0, constraint=FormatConstraint(tiny_tok, sizes, 10, 5)
    )
    parse = [
        parse_completion(t, n, 10, 5)
        for t, n in zip(decode_completions(tiny_tok, constrained.completions), sizes, strict=True)
    ]
    assert all(p.slate_valid and p.rank_valid for p in parse), [p.errors for p in parse]
    assert all(constrained.stopped)
    free_parse = [parse_completion(t, n, 10, 5) for t, n in zip(decode_completions(tiny_tok, free.completions), sizes, strict=True)]
    assert not all(p.slate_valid and p.rank_valid for p in free_parse)  # the constraint did the work


def test_constrained_sampling_with_a_bpe_tokenizer(bpe_tok) -> None:
    torch.manual_seed(0)
    model = build_tiny_llama(len(bpe_tok), hidden_size=32, num_layers=1).eval()
    sizes = [20, 7]
    ro = generate(
        model, bpe_tok, [[10, 11, 12], [13, 14]], 3, 90, temperature=1.0,
        generator=torch.Generator().manual_seed(0), constraint=FormatConstraint(bpe_tok, sizes, 10, 5),
    )
    texts = decode_completions(bpe_tok, ro.completions)
    for text, n in zip(texts, [20, 20, 20, 7, 7, 7], strict=True):
        p = parse_completion(text, n, 10, 5)
        assert p.slate_valid and p.rank_valid, (text, p.errors)
    assert len(format_token_ids(bpe_tok, 20)) < 60  # a small allowed set, not the vocabulary


@pytest.mark.parametrize("constrained", [False, True])
def test_constrained_rollouts_make_every_training_rollout_valid(tmp_path, constrained: bool) -> None:
    """One RL step of the untrained toy model: free sampling writes invalid answers, the
    constraint (train key constrained_rollouts) only valid ones."""
    from pathlib import Path

    from fgrpo.commands.train import train
    from fgrpo.config import load_config
    from fgrpo.config.commands import TrainConfig
    from fgrpo.trainer.metrics_log import read_metrics

    cfg = load_config(TrainConfig, Path(__file__).parents[1] / "configs" / "toy.yaml", [
        f"output_dir={tmp_path}", "sft_warmup_steps=0", "max_steps=1", "group_size=4", "prompts_per_step=2",
        "eval_every=1", "eval_limit=4", "tensorboard=false", "torch_threads=1", f"constrained_rollouts={str(constrained).lower()}",
    ])  # fmt: skip
    train(cfg)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    (row,) = [r for r in rows if "format/valid_rate" in r]
    assert (row["format/valid_rate"] == 1.0) == constrained
    # the in-training evaluation follows the rollouts (eval_constrained: null)
    evals = [r["valid/format/valid_rate"] for r in rows if "valid/format/valid_rate" in r]
    assert len(evals) == 2 and all((v == 1.0) == constrained for v in evals)
