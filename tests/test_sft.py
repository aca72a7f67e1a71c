"""Supervised warm start: targets in the exact format, and the completion-only loss."""

from __future__ import annotations

import numpy as np
import torch

from fgrpo.data.toy import make_toy_examples
from fgrpo.format.completion import parse_completion, render_completion
from fgrpo.models.tiny import build_tiny_llama, build_tiny_tokenizer
from fgrpo.trainer.sft import collate, completion_loss, encode_sft_example, sft_target


def test_sft_targets_hold_all_relevant_and_rank_them_first() -> None:
    rng = np.random.default_rng(0)
    for ex in make_toy_examples(50, pool_size=8, max_relevant=3, seed=1):
        slate, ranking = sft_target(ex, slate_size=5, max_rank=3, rng=rng)
        rel = ex.relevant_numbers()
        assert set(rel) <= set(slate) and len(slate) == 5 and len(set(slate)) == 5
        head = ranking[: len(rel)]
        assert set(head) == set(rel) or (len(rel) > len(ranking) and set(head) <= set(rel))
        grades = [rel[k] for k in head]
        assert grades == sorted(grades, reverse=True)  # higher grade first, ties in random order
        assert set(ranking) <= set(slate) and len(ranking) == 3


def test_sft_target_ranks_only_slate_members_when_relevant_overflow_the_slate() -> None:
    """4 relevant candidates, a slate of 2 and a ranking of 3: the ranking may only name the
    2 slate members (it named relevant candidates outside the slate: an invalid target)."""
    from fgrpo.data.schema import Candidate, Example

    ex = Example("q", "q", [Candidate(str(i), f"c{i}") for i in range(1, 7)], {"1": 1, "2": 1, "3": 1, "4": 1})
    for seed in range(10):
        slate, ranking = sft_target(ex, slate_size=2, max_rank=3, rng=np.random.default_rng(seed))
        assert len(slate) == 2 and set(slate) <= {1, 2, 3, 4}
        assert sorted(ranking) == sorted(slate)
        assert parse_completion(render_completion(slate, ranking), 6, 2, 3).valid


def test_sft_target_text_parses_back() -> None:
    tok = build_tiny_tokenizer()
    ex = make_toy_examples(1, seed=3)[0]
    slate, ranking = sft_target(ex, 5, 3, np.random.default_rng(0))
    ids, labels = encode_sft_example(tok, ex, slate, ranking, 10, 5)
    completion = [t for t, lab in zip(ids, labels, strict=True) if lab != -100]
    text = tok.decode(completion, skip_special_tokens=True)
    p = parse_completion(text, ex.num_candidates, 10, 5)
    assert p.valid and p.slate == slate and p.ranking == ranking
    assert completion[-1] == tok.eos_token_id


def test_completion_loss_equals_naive_per_token_cross_entropy() -> None:
    torch.manual_seed(0)
    tok = build_tiny_tokenizer()
    model = build_tiny_llama(len(tok), hidden_size=32, num_layers=2).eval()
    rng = np.random.default_rng(0)
    batch = []
    for ex in make_toy_examples(3, pool_size=8, seed=4):
        slate, ranking = sft_target(ex, 4, 2, rng)
        batch.append(encode_sft_example(tok, ex, slate, ranking, 10, 5))
    fast = completion_loss(model, collate(batch, tok.pad_token_id))
    losses = []
    for ids, labels in batch:  # one unpadded sequence at a time, every position's logits
        logits = model(input_ids=torch.tensor([ids])).logits[0]
        logp = torch.log_softmax(logits[:-1], -1)
        for t, lab in enumerate(labels[1:]):
            if lab != -100:
                losses.append(-logp[t, lab])
    naive = torch.stack(losses).mean()
    assert torch.allclose(fast, naive, atol=1e-5), (fast, naive)


def test_model_order_target_with_three_graded_relevant() -> None:
    """The warm start's target (slate_order=model) on a next-3 pool: all three relevant in the
    slate, the model's order kept, the missed ones replacing its lowest non-relevant picks; the
    ranking lists the relevant ones first, by grade, then the slate in order."""
    from fgrpo.data.schema import Candidate, Example

    ex = Example("q", "q", [Candidate(str(i), f"c{i}") for i in range(1, 21)], {"7": 1, "12": 3, "19": 2})
    model_order = [3, 7, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]  # 12, 19 outside its top 10
    slate, ranking = sft_target(ex, 10, 5, np.random.default_rng(0), lambda e: model_order, slate_order="model")
    assert slate == [3, 7, 1, 2, 4, 5, 6, 8, 12, 19]  # 9 and 10 dropped for 12 (grade 3) and 19 (grade 2)
    assert ranking == [12, 19, 7, 3, 1]
    assert parse_completion(render_completion(slate, ranking), 20, 10, 5).valid
    # shuffled and ranked slates: the three relevant first in the ranking, by grade
    for order in ("shuffled", "ranked"):
        slate, ranking = sft_target(ex, 10, 5, np.random.default_rng(1), slate_order=order)
        assert ranking[:3] == [12, 19, 7] and {7, 12, 19} <= set(slate) and len(slate) == 10
    assert sft_target(ex, 10, 5, np.random.default_rng(1), slate_order="ranked")[0][:3] == [12, 19, 7]


def test_micro_batches_give_the_batch_loss_and_gradients() -> None:
    """batch_loss over micro-batches of 1 and 2 examples: the same loss and gradients as the
    whole (padded) batch at once, plain and with the constrained softmax."""
    from fgrpo.trainer.sft import batch_loss, supervised_count

    tok = build_tiny_tokenizer()
    model = build_tiny_llama(len(tok), hidden_size=32, num_layers=2, seed=0).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # larger weights: every position matters
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    rng = np.random.default_rng(0)
    examples = make_toy_examples(5, pool_size=8, seed=6)
    examples[1] = make_toy_examples(1, pool_size=5, seed=7)[0]  # a shorter prompt: padding
    batch = [encode_sft_example(tok, ex, *sft_target(ex, 4, 2, rng), 10, 5) for ex in examples]
    assert len({len(ids) for ids, _ in batch}) > 1
    assert supervised_count(batch) == sum(sum(1 for y in lab if y != -100) for _, lab in batch)
    for constrained in (False, True):
        results = []
        for micro in (0, 1, 2):
            model.zero_grad()
            loss = batch_loss(model, tok, examples, batch, micro, "cpu", constrained, 10, 5)
            results.append((loss, [p.grad.clone() for p in model.parameters()]))
        whole_loss, whole_grads = results[0]
        if not constrained:  # the whole batch at once is the mean cross-entropy
            assert abs(whole_loss - completion_loss(model, collate(batch, tok.pad_token_id)).item()) < 1e-6
        for loss, grads in results[1:]:
            assert abs(loss - whole_loss) < 1e-5
            for a, b in zip(grads, whole_grads, strict=True):
                assert torch.allclose(a, b, atol=1e-5, rtol=0), float((a - b).abs().max())
        assert any(float(g.abs().max()) > 1e-3 for g in whole_grads)
