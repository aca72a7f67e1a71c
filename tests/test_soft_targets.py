"""Soft targets in SFT (``soft_targets``, knowledge distillation): the mixed loss and the
targets on hand-worked numbers, the teachers' pool distributions, the config's checks, and a
run that learns the teacher's distribution rather than only its order."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fgrpo.data.movielens import Interaction, RecData
from fgrpo.data.next_item import build_sequential
from fgrpo.data.schema import Example
from fgrpo.format.items import item_token
from fgrpo.models.idtiny import build_id_tiny, build_item_tokenizer
from fgrpo.trainer.sft import collate, mixed_cross_entropy, soft_item_targets

LN2 = math.log(2.0)


def test_mixed_cross_entropy_by_hand() -> None:
    # p = [0.5, 0.25, 0.25] at each of three positions
    logits = torch.log(torch.tensor([0.5, 0.25, 0.25])).repeat(1, 3, 1)
    targets = torch.tensor([[0, 2, -100]])
    soft = torch.zeros(1, 3, 3)
    soft[0, 0] = torch.tensor([0.0, 0.5, 0.5])  # position 0: a soft target; position 1: none
    # position 0: 0.5 * -ln 0.5 + 0.5 * (0.5 * -ln 0.25 + 0.5 * -ln 0.25) = 0.5 ln2 + ln2
    # position 1: -ln 0.25 = 2 ln2; position 2 has no label. Mean over the two labelled.
    got = mixed_cross_entropy(logits, targets, soft, 0.5)
    assert got.item() == pytest.approx((1.5 * LN2 + 2 * LN2) / 2, abs=1e-6)
    assert mixed_cross_entropy(logits, targets, soft, 0.5, normalizer=7).item() == pytest.approx(3.5 * LN2 / 7, abs=1e-6)
    hard = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), targets.reshape(-1), ignore_index=-100)
    assert mixed_cross_entropy(logits, targets, soft, 0.0).item() == pytest.approx(hard.item(), abs=1e-6)
    # weight 1 and a one-hot soft target on the label: the hard cross-entropy again
    onehot = torch.zeros(1, 3, 3)
    onehot[0, 0, 0] = onehot[0, 1, 2] = 1.0
    assert mixed_cross_entropy(logits, targets, onehot, 1.0).item() == pytest.approx(hard.item(), abs=1e-6)
    # a forbidden token (-inf logit) with no soft mass: finite, and the gradient too
    masked = logits.clone().requires_grad_(True)
    out = mixed_cross_entropy(masked.masked_fill(torch.tensor([False, False, True]), float("-inf")), torch.tensor([[0, 1, -100]]),
                              torch.tensor([[[0.4, 0.6, 0.0], [0.0] * 3, [0.0] * 3]]), 1.0)  # fmt: skip
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(masked.grad).all()
    # position 0 alone: 0.4 * -ln(0.5/0.75) + 0.6 * -ln(0.25/0.75); position 1: -ln(0.25/0.75)
    want = (0.4 * -math.log(2 / 3) + 0.6 * -math.log(1 / 3) - math.log(1 / 3)) / 2
    assert out.item() == pytest.approx(want, abs=1e-6)


def test_soft_item_targets_by_hand() -> None:
    # vocabulary of 8; the row's candidates 1, 2, 3 are tokens 3, 5, 6; token 7 closes the slate
    allowed = torch.zeros(1, 4, 8, dtype=torch.bool)
    allowed[0, 0, [3, 5, 6]] = True  # first pick: any pool item
    allowed[0, 1, [3, 6, 7]] = True  # token 5 written: the other two, or close
    allowed[0, 2, [3, 7]] = True
    allowed[0, 3, [3, 7]] = True
    targets = torch.tensor([[5, 6, 7, -100]])  # two items, the closing tag, an unlabelled position
    soft = soft_item_targets(allowed, targets, [[3, 5, 6]], [[0.2, 0.3, 0.5]])
    want = torch.zeros(1, 4, 8)
    want[0, 0, [3, 5, 6]] = torch.tensor([0.2, 0.3, 0.5])
    want[0, 1, [3, 6]] = torch.tensor([0.2 / 0.7, 0.5 / 0.7])  # renormalized over the allowed items
    assert torch.allclose(soft, want, atol=1e-6)  # the closing tag and the unlabelled position: none


def test_pool_probs_average_each_teachers_softmax(tmp_path) -> None:
    from fgrpo.commands.sft import FusedOrder, ModelFillerOrder, ScorerFillerOrder, pool_softmax
    from fgrpo.models.idtiny import next_item_scores

    assert pool_softmax([0.0, math.log(3.0)], 1.0) == pytest.approx([0.25, 0.75])
    assert pool_softmax([0.0, 2 * math.log(3.0)], 2.0) == pytest.approx([0.25, 0.75])  # temperature
    assert pool_softmax([0.0, float("-inf")], 1.0) == [1.0, 0.0]  # an item unseen in training

    class Fixed:  # a scorer with given pool scores
        def __init__(self, scores: list[float]) -> None:
            self.s = scores

        def scores(self, example: Example) -> list[float]:
            return self.s

        def rank(self, example: Example) -> list[int]:
            return sorted(range(1, len(self.s) + 1), key=lambda k: -self.s[k - 1])

    a, b = ScorerFillerOrder(Fixed([0.0, math.log(3.0)])), ScorerFillerOrder(Fixed([math.log(3.0), 0.0]))
    fused, any_example = FusedOrder([a, b]), _examples()[0]  # the fixed scorers ignore it
    assert fused.pool_probs(any_example, 1.0) == pytest.approx([0.5, 0.5])  # (0.25 + 0.75) / 2 each
    assert a(any_example) == [2, 1]  # the order from the same (cached) scores
    with pytest.raises(ValueError, match="soft_targets.*every teacher"):
        FusedOrder([a, lambda e: [1, 2]]).pool_probs(any_example, 1.0)
    tok = build_item_tokenizer([str(i) for i in range(1, 21)])
    model = build_id_tiny(len(tok), hidden_size=16, num_layers=1, num_heads=2, seed=0)
    ex = _examples()[0]
    order = ModelFillerOrder(model, tok)
    want = torch.softmax(torch.tensor(next_item_scores(model, tok, [ex])[0], dtype=torch.float64) / 0.5, 0)
    assert order.pool_probs(ex, 0.5) == pytest.approx(want.tolist(), abs=1e-6)


def test_soft_targets_config_checks() -> None:
    from fgrpo.config.commands import SFTConfig

    ok = {"filler_policy": "model", "slate_order": "teacher", "constrained_loss": True}
    SFTConfig(**ok, soft_targets=0.5).validate()
    for bad, match in ((dict(ok, soft_targets=1.5), r"soft_targets.*\[0, 1\]"),
                       (dict(ok, soft_targets=0.5, soft_temperature=0.0), "soft_temperature"),
                       (dict(ok, soft_targets=0.5, constrained_loss=False), "soft_targets.*constrained_loss"),
                       (dict(ok, soft_targets=0.5, filler_policy="bm25"), "soft_targets.*filler_policy")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            SFTConfig(**bad).validate()


def _examples() -> list[Example]:
    rng = np.random.default_rng(0)
    inter = []
    for u in range(1, 25):
        start = int(rng.integers(1, 21))
        inter += [Interaction(str(u), str((start + t - 1) % 20 + 1), float(t)) for t in range(10)]
    data = RecData(inter, {str(i): f"Movie {i}" for i in range(1, 21)}, None, None)  # type: ignore[arg-type]
    return build_sequential(data, pool_size=6, history_len=4)["train"]


def _first_pick(model, tok, examples: list[Example]) -> torch.Tensor:
    """[n, 6] the model's distribution over the pool at the slate's first item, as SFT's
    constrained softmax reads it (the first item may be any pool item)."""
    from fgrpo.format.prompts import encode_prompt

    rows = [encode_prompt(tok, ex, 3, 2) + [tok.convert_tokens_to_ids("<SLATE>")] for ex in examples]
    batch = collate([(r, r) for r in rows], tok.pad_token_id)
    pos = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=pos).logits[:, -1]
    cand = [tok.convert_tokens_to_ids([item_token(c.id) for c in ex.candidates]) for ex in examples]
    return torch.softmax(torch.stack([logits[i, c] for i, c in enumerate(cand)]), -1)


class ItemPreference:
    """A teacher that prefers higher item ids, with a confidence: pool scores id / 4."""

    def scores(self, example: Example) -> list[float]:
        return [int(c.id) / 4 for c in example.candidates]

    def __call__(self, example: Example) -> list[int]:
        s = self.scores(example)
        return sorted(range(1, len(s) + 1), key=lambda k: -s[k - 1])

    def pool_probs(self, example: Example, temperature: float) -> list[float]:
        from fgrpo.commands.sft import pool_softmax

        return pool_softmax(self.scores(example), temperature)


def test_soft_targets_teach_the_teachers_distribution() -> None:
    """A student taught a teacher's order alone (hard targets) learns its top picks with
    full confidence; with ``soft_targets=1`` it learns the teacher's distribution over the
    pool: after the same steps its first-pick distribution is far closer to the teacher's
    (KL) than the hard-target student's, and than where it started."""
    from fgrpo.trainer.sft import supervised_steps

    examples = _examples()
    tok = build_item_tokenizer([str(i) for i in range(1, 21)])
    teacher = ItemPreference()
    want = torch.tensor([teacher.pool_probs(ex, 1.0) for ex in examples], dtype=torch.float32)

    def kl(model) -> float:
        got = _first_pick(model, tok, examples)
        return float((want * (want.log() - got.log())).sum(-1).mean())

    runs = {}
    for weight in (0.0, 1.0):
        student = build_id_tiny(len(tok), hidden_size=16, num_layers=1, num_heads=2, seed=0)
        start = kl(student)
        supervised_steps(student, tok, examples, 100, 16, 1e-2, 0, 3, 3, 2, filler_order=teacher, slate_order="teacher",
                         constrained_loss=True, soft_targets=weight)  # fmt: skip
        runs[weight] = kl(student)
    assert runs[1.0] < start / 10 and runs[1.0] < runs[0.0] / 10, (start, runs)  # 0.50 -> 3e-5; hard: 1.1
    with pytest.raises(ValueError, match="soft_targets"):
        supervised_steps(student, tok, examples, 1, 4, 1e-3, 0, 3, 3, 2, filler_order=lambda e: [1, 2, 3, 4, 5, 6],
                         slate_order="teacher", constrained_loss=True, soft_targets=0.5)  # fmt: skip
