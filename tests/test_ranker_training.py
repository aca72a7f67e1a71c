"""The ranker's training changes: the constrained policy's log-probs, SFT on the model's own
order with a constrained softmax, per-phase entropy, and μ > 1 PPO passes that step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fgrpo.data.schema import Candidate, Example
from fgrpo.format.constrained import allowed_masks
from fgrpo.format.items import ItemConstraint
from fgrpo.models.idtiny import build_id_tiny, build_item_tokenizer
from fgrpo.trainer.forward import completion_logprobs, token_logprobs
from fgrpo.trainer.sft import model_order_target, rollin_target, sft_target, slate_skip

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def tok():
    return build_item_tokenizer([str(i) for i in range(1, 21)])


def _example() -> Example:
    cands = [Candidate("7", "a"), Candidate("12", "b"), Candidate("3", "c"), Candidate("20", "d")]
    return Example("u1-5", "q", cands, {"12": 1}, task="movies", meta={"history_ids": ["1", "2", "9"]})


def test_token_logprobs_masked_by_hand() -> None:
    logits = torch.tensor([[[0.0, 1.0, 2.0, 3.0]]])  # [1, 1, 4]
    allowed = torch.tensor([[[True, False, True, False]]])
    lp = token_logprobs(logits, torch.tensor([[2]]), 1.0, allowed)
    # softmax over tokens {0, 2} only: e^2 / (e^0 + e^2)
    assert torch.allclose(lp, torch.log(torch.tensor([[np.e**2 / (1 + np.e**2)]], dtype=torch.float32)))
    lp, ent = token_logprobs(logits, torch.tensor([[2]]), 1.0, allowed, entropy=True)
    p = np.e**2 / (1 + np.e**2)
    assert ent.item() == pytest.approx(-(p * np.log(p) + (1 - p) * np.log(1 - p)), rel=1e-5)
    # without a mask: the whole vocabulary
    free = token_logprobs(logits, torch.tensor([[2]]), 1.0)
    assert free.item() == pytest.approx(2 - np.log(sum(np.e**k for k in range(4))), rel=1e-6)


def test_allowed_masks_replay_the_constraint(tok) -> None:
    ex = _example()
    c = ItemConstraint(tok, [ex], max_slate=2, max_rank=1)
    ids = tok.convert_tokens_to_ids
    comp = ids(["<SLATE>", "[i12]", "[i3]", "</SLATE>", "<RANK>", "[i3]", "</RANK>"]) + [tok.eos_token_id]
    m = allowed_masks(c, [comp, comp[:3]], [0, 0], len(tok))
    assert m.shape == (2, len(comp), len(tok))
    for t in range(len(comp)):  # every position: exactly the state machine's next tokens
        assert set(m[0, t].nonzero().flatten().tolist()) == set(c.next_tokens(comp[:t], c.pools[0]))
        assert bool(m[0, t, comp[t]])  # the written token was allowed
    assert bool(m[1, 3:].all())  # past a row's end: everything (masked out of every loss)


def test_model_order_target_keeps_the_models_order_and_recovers_the_target() -> None:
    ex = _example()  # candidate 2 is relevant
    # the model ranks the target third: slate in its order, the ranking puts the target first
    slate, ranking = model_order_target(ex, 3, 2, [2], lambda e: [4, 3, 2, 1])
    assert slate == [4, 3, 2] and ranking == [2, 4] and slate_skip(ex, slate) == 2
    # the model misses the target: it replaces the lowest non-relevant pick, at the end
    slate, ranking = model_order_target(ex, 2, 2, [2], lambda e: [4, 3, 1, 2])
    assert slate == [4, 2] and ranking == [2, 4] and slate_skip(ex, slate) == 1
    # teacher: a pure distillation, labels unused
    slate, ranking = sft_target(ex, 3, 2, np.random.default_rng(0), lambda e: [4, 3, 1, 2], "teacher")
    assert slate == [4, 3, 1] and ranking == [4, 3]


def test_skipped_slate_items_carry_no_label_and_constrained_loss_is_pool_softmax(tok) -> None:
    from fgrpo.trainer.sft import collate, completion_loss, constrained_allowed, encode_sft_example

    ex = _example()
    ids, labels = encode_sft_example(tok, ex, [4, 3, 2], [2, 4], 3, 2, skip=2)
    comp = [y for y in labels if y != -100]
    start = next(i for i, y in enumerate(labels) if y != -100)
    assert labels[start + 1] == labels[start + 2] == -100  # the model's own first two picks
    assert ids[start + 3] == tok.convert_tokens_to_ids("[i12]") and labels[start + 3] == ids[start + 3]
    assert len(comp) == len(ids) - start - 2
    model = build_id_tiny(len(tok), hidden_size=32, num_layers=2, num_heads=2, seed=0)
    batch = [(ids, labels)]
    inputs = collate(batch, tok.pad_token_id)
    width = int(inputs["keep"]) - 1
    allowed = constrained_allowed(tok, [ex], batch, width, 3, 2)
    free = completion_loss(model, inputs)
    pooled = completion_loss(model, inputs, allowed)
    assert pooled < free  # a softmax over a handful of allowed tokens, not 20+ item tokens
    # by hand: the target's position allows the two remaining pool items and </SLATE>
    pos = width - (len(ids) - start) + 3
    allowed_ids = set(allowed[0, pos].nonzero().flatten().tolist())
    assert allowed_ids == set(tok.convert_tokens_to_ids(["[i7]", "[i12]", "</SLATE>"]))


def test_rollin_target_is_the_models_answer_and_labels_point_at_the_target(tok) -> None:
    from fgrpo.trainer.sft import collate, constrained_allowed, encode_sft_example

    ex = _example()  # candidate 2 ([i12]) is relevant
    # the model ranks it third: slate and ranking both in the model's order
    assert rollin_target(ex, 3, 2, [2], lambda e: [4, 3, 2, 1]) == ([4, 3, 2], [4, 2])
    assert rollin_target(ex, 3, 3, [2], lambda e: [4, 3, 2, 1]) == ([4, 3, 2], [4, 3, 2])
    # it misses it: the target takes the last non-relevant place of the slate
    assert rollin_target(ex, 2, 2, [2], lambda e: [4, 3, 1, 2]) == ([4, 2], [4, 2])
    assert sft_target(ex, 3, 2, np.random.default_rng(0), lambda e: [4, 3, 2, 1], "rollin") == ([4, 3, 2], [4, 2])
    ids, labels = encode_sft_example(tok, ex, [4, 3, 2], [4, 2], 3, 2, relabel=True)
    start = next(i for i, y in enumerate(labels) if y != -100)
    names = tok.convert_ids_to_tokens
    assert names(ids[start:]) == ["<SLATE>", "[i20]", "[i3]", "[i12]", "</SLATE>", "<RANK>", "[i20]", ">", "[i12]", "</RANK>", "<eos>"]
    # every item before the target, in each phase, is labelled with the target; the rest with itself
    assert names(labels[start:]) == ["<SLATE>", "[i12]", "[i12]", "[i12]", "</SLATE>", "<RANK>", "[i12]", ">", "[i12]", "</RANK>", "<eos>"]
    # the constraint (read from the written tokens, not the labels) allows the target at each of them
    batch = [(ids, labels)]
    width = int(collate(batch, tok.pad_token_id)["keep"]) - 1
    allowed = constrained_allowed(tok, [ex], batch, width, 3, 2)
    offset = width - (len(ids) - start)
    for i in (1, 2, 3, 6, 8):
        assert bool(allowed[0, offset + i, labels[start + i]]), i  # allowed[.., j]: the mask of completion token j
    assert not bool(allowed[0, offset + 8, ids[start + 6]])  # [i20], ranked already, is not allowed again
    # nothing relevant after a position: it keeps its own token (two relevant: each finds the next one)
    ex2 = Example("u1-6", "q", ex.candidates, {"12": 1, "20": 1}, task="movies", meta=ex.meta)
    ids, labels = encode_sft_example(tok, ex2, [3, 4, 1, 2], [3, 4], 4, 2, relabel=True)
    start = next(i for i, y in enumerate(labels) if y != -100)
    assert names(labels[start + 1 : start + 5]) == ["[i20]", "[i20]", "[i12]", "[i12]"]  # [i3] [i20] [i7] [i12]
    assert names(labels[start + 7 : start + 10]) == ["[i20]", ">", "[i20]"]  # [i3] > [i20]


def _toy_train(tmp_path: Path, *overrides: str) -> list[dict]:
    from fgrpo.commands.train import train
    from fgrpo.config import load_config
    from fgrpo.config.commands import TrainConfig
    from fgrpo.trainer.metrics_log import read_metrics

    cfg = load_config(TrainConfig, ROOT / "configs" / "toy.yaml", [
        f"output_dir={tmp_path}", "sft_warmup_steps=0", "max_steps=2", "group_size=4", "prompts_per_step=2",
        "eval_every=0", "tensorboard=false", "torch_threads=1", "learning_rate=0.01", *overrides,
    ])  # fmt: skip
    train(cfg)
    return [r for r in read_metrics(tmp_path / "metrics.jsonl") if "reward/slate" in r]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model" / "model.safetensors")


def test_ppo_epochs_step_between_passes_and_clip(tmp_path: Path) -> None:
    """μ = 1: the ratio is 1, nothing is clipped. μ = 3: the optimizer steps after each pass,
    so the second and third passes see a moved policy (clip_frac > 0 at this lr) and the
    final weights differ from μ = 1's; before the fix μ only rescaled one step's gradient."""
    one = _toy_train(tmp_path / "mu1", "ppo_epochs=1", "constrained_rollouts=true", "learning_rate=0.05")
    three = _toy_train(tmp_path / "mu3", "ppo_epochs=3", "constrained_rollouts=true", "learning_rate=0.05")
    assert all(r["clip_frac"] == 0.0 for r in one)
    assert any(r["clip_frac"] > 0.0 for r in three)
    w1, w3 = _weights(tmp_path / "mu1"), _weights(tmp_path / "mu3")
    assert any(not torch.equal(w1[k], w3[k]) for k in w1)


def test_constrained_logprobs_and_entropy_per_phase(tmp_path: Path) -> None:
    rows = _toy_train(tmp_path / "c", "constrained_rollouts=true", "max_steps=1")
    free = _toy_train(tmp_path / "f", "constrained_rollouts=true", "constrained_logprobs=false", "max_steps=1")
    for r in rows + free:
        assert r["entropy/slate"] > 0 and r["entropy/rank"] >= 0
    # the constrained policy spreads its mass over a few allowed tokens, not the vocabulary
    assert rows[0]["entropy/slate"] < free[0]["entropy/slate"]


def test_completion_logprobs_with_allowed_equals_masked_plain_path(tok) -> None:
    ex = _example()
    model = build_id_tiny(len(tok), hidden_size=32, num_layers=2, num_heads=2, seed=0)
    from fgrpo.format.prompts import encode_prompt

    prompt = encode_prompt(tok, ex, 2, 1)
    ids = tok.convert_tokens_to_ids
    comps = [ids(["<SLATE>", "[i12]", "</SLATE>", "<RANK>", "[i12]", "</RANK>"]), ids(["<SLATE>", "[i7]", "[i3]"])]
    c = ItemConstraint(tok, [ex], max_slate=2, max_rank=1)
    allowed = allowed_masks(c, comps, [0, 0], len(tok))
    shared, _ = completion_logprobs(model, prompt, comps, tok.pad_token_id, 1.0, True, allowed)
    plain, mask = completion_logprobs(model, prompt, comps, tok.pad_token_id, 1.0, False, allowed)
    assert torch.allclose(shared[mask], plain[mask], atol=1e-5)
    assert (shared[mask] > completion_logprobs(model, prompt, comps, tok.pad_token_id, 1.0, True)[0][mask] - 1e-6).all()
