"""F-GRPO's math, in layers: hand-worked numbers; vectorized vs a slow Python loop; rewards
vs ir_measures (trec_eval); a split of the batch gives the same loss and gradient."""

from __future__ import annotations

import math
import random
import statistics

import ir_measures
import pytest
import torch
from ir_measures import R, nDCG

from fgrpo.algorithm import core_algos as ca
from fgrpo.algorithm.rewards import grades_tensor, phase_rewards
from fgrpo.format.completion import parse_completion

torch.set_num_threads(1)

# ----------------------------------------------------------------------------- advantages


def test_group_advantages_hand() -> None:
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 2.0], [3.0, 0.0, 0.0, 1.0]])
    expected = torch.tensor([[0.5, -0.5, -0.5, 0.5], [0.0, 0.0, 0.0, 0.0], [2.0, -1.0, -1.0, 0.0]])
    assert torch.equal(ca.group_advantages(r), expected)
    # GRPO's std scaling: sample std of [1, 0, 0, 1] is sqrt(1/3); a flat group stays 0
    std = math.sqrt(1 / 3)
    scaled = ca.group_advantages(r[:2], scale_by_std=True, eps=1e-6)
    a = 0.5 / (std + 1e-6)
    torch.testing.assert_close(
        scaled, torch.tensor([[a, -a, -a, a], [0.0, 0.0, 0.0, 0.0]]), rtol=0, atol=1e-6
    )


def _group_advantages_loop(
    rewards: list[list[float]], scale_by_std: bool, eps: float
) -> list[list[float]]:
    out = []
    for row in rewards:
        mean = sum(row) / len(row)
        div = statistics.stdev(row) + eps if scale_by_std else 1.0
        out.append([(r - mean) / div for r in row])
    return out


@pytest.mark.parametrize("scale_by_std", [False, True])
def test_group_advantages_vs_loop(scale_by_std: bool) -> None:
    g = torch.Generator().manual_seed(0)
    r = torch.rand(7, 5, generator=g, dtype=torch.float64)
    r[2] = 0.25  # a flat group
    ref = torch.tensor(_group_advantages_loop(r.tolist(), scale_by_std, 1e-6), dtype=torch.float64)
    torch.testing.assert_close(
        ca.group_advantages(r, scale_by_std, eps=1e-6), ref, rtol=1e-12, atol=1e-12
    )


def _masks(
    slate_counts: list[int], lengths: list[int], t: int
) -> tuple[torch.Tensor, torch.Tensor]:
    pos = torch.arange(t).unsqueeze(0)
    valid = pos < torch.tensor(lengths).unsqueeze(1)
    slate = (pos < torch.tensor(slate_counts).unsqueeze(1)) & valid
    return slate, valid & ~slate


def test_token_advantages_hand_1x3() -> None:
    r_slate = torch.tensor([[1.0, 0.0, 0.5]])  # A_slate = [.5, -.5, 0]
    r_rank = torch.tensor([[0.0, 1.0, 1.0]])  # A_rank = [-2/3, 1/3, 1/3]
    # row 0: 2 slate + 2 rank; row 1: 1 slate + 2 rank + 1 pad; row 2: 3 slate + 1 rank
    slate, rank = _masks([2, 1, 3], [4, 3, 4], 4)
    lam = 0.5
    fg = ca.fgrpo_token_advantages(r_slate, r_rank, slate, rank, rank_weight=lam)
    third = 1 / 3
    expected = torch.tensor(
        [
            [0.5, 0.5, -lam * 2 * third, -lam * 2 * third],
            [-0.5, lam * third, lam * third, 0.0],
            [0.0, 0.0, 0.0, lam * third],
        ]
    )
    torch.testing.assert_close(fg, expected, rtol=0, atol=1e-7)
    # GRPO: joint R = R_slate + λ R_rank = [1 + 0, 0 + .5, .5 + .5] = [1, .5, 1], mean 5/6
    gr = ca.grpo_token_advantages(r_slate, r_rank, slate, rank, rank_weight=lam)
    a = [1 - 5 / 6, 0.5 - 5 / 6, 1 - 5 / 6]
    expected = torch.tensor([[a[0]] * 4, [a[1]] * 3 + [0.0], [a[2]] * 4])
    torch.testing.assert_close(gr, expected, rtol=0, atol=1e-7)
    assert {
        "fgrpo": ca.fgrpo_token_advantages,
        "grpo": ca.grpo_token_advantages,
    } == ca.ADVANTAGE_ESTIMATORS


def test_grpo_is_sum_of_fgrpo_phase_advantages() -> None:
    """GRPO's joint advantage = A_slate + λ A_rank on every completion token (no std scaling)."""
    g = torch.Generator().manual_seed(1)
    p, gs, t = 5, 4, 9
    for lam in (1.0, 0.5, 2.0):
        r_slate, r_rank = torch.rand(p, gs, generator=g), torch.rand(p, gs, generator=g)
        lengths = torch.randint(1, t + 1, (p * gs,), generator=g)
        counts = (torch.rand(p * gs, generator=g) * (lengths + 1)).long().clamp(max=lengths)
        slate, rank = _masks(counts.tolist(), lengths.tolist(), t)
        valid = slate | rank
        everything, nothing = valid, torch.zeros_like(valid)
        # A_slate on every token, then λ A_rank on every token
        a_slate = ca.fgrpo_token_advantages(r_slate, r_rank, everything, nothing, lam)
        a_rank = ca.fgrpo_token_advantages(r_slate, r_rank, nothing, everything, lam)
        grpo = ca.grpo_token_advantages(r_slate, r_rank, slate, rank, lam)
        torch.testing.assert_close(grpo, a_slate + a_rank, rtol=0, atol=1e-6)
        assert (grpo[~valid] == 0).all()
        # F-GRPO differs from GRPO token-wise when both rewards vary (this data)
        fg = ca.fgrpo_token_advantages(r_slate, r_rank, slate, rank, lam)
        assert not torch.allclose(fg[valid], grpo[valid], atol=1e-3)


def test_fgrpo_equals_grpo_with_constant_rank_reward_and_all_slate_tokens() -> None:
    # dyadic rewards: every sum and mean below is exact in float32
    r_slate = torch.tensor([[1.0, 0.0, 0.5, 0.25], [0.75, 0.75, 0.0, 0.125]])
    r_rank = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.25, 0.25, 0.25, 0.25]])
    lengths = [5, 3, 6, 1, 6, 2, 4, 6]
    slate, rank = _masks(lengths, lengths, 6)  # every completion token is a slate token
    assert not rank.any()
    for lam in (1.0, 0.5):
        fg = ca.fgrpo_token_advantages(r_slate, r_rank, slate, rank, lam)
        gr = ca.grpo_token_advantages(r_slate, r_rank, slate, rank, lam)
        assert torch.equal(fg, gr)
        assert fg.abs().sum() > 0


@pytest.mark.parametrize("scale_by_std", [False, True])
def test_fgrpo_phase_isolation(scale_by_std: bool) -> None:
    """A flat rank reward puts no advantage on rank tokens; a flat slate reward none on slate tokens."""
    slate, rank = _masks([2, 3, 1, 2], [5, 4, 4, 3], 5)
    varying, flat = torch.tensor([[1.0, 0.0, 0.5, 0.25]]), torch.full((1, 4), 0.5)
    a = ca.fgrpo_token_advantages(varying, flat, slate, rank, scale_by_std=scale_by_std)
    assert (a[rank] == 0).all() and (a[slate] != 0).all()
    a = ca.fgrpo_token_advantages(flat, varying, slate, rank, scale_by_std=scale_by_std)
    assert (a[slate] == 0).all() and (a[rank] != 0).all()


def test_zero_variance_fraction() -> None:
    r = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [2.0, 2.0, 2.0], [0.0, 0.0, 1e-9]])
    assert ca.zero_variance_fraction(r).item() == pytest.approx(0.75)
    assert ca.zero_variance_fraction(r, tol=1e-12).item() == pytest.approx(0.5)
    assert ca.zero_variance_fraction(r[1:2]).item() == 0.0
    assert ca.zero_variance_fraction(torch.tensor([[0.0, 0.5]]), tol=0.5).item() == 1.0  # spread <= tol


# ----------------------------------------------------------------------------- rewards


def _slate_coverage_loop(
    slate: list[set[int]], grades: list[list[float]], kind: str
) -> list[float]:
    out = []
    for s, g in zip(slate, grades, strict=True):
        rel = {k for k, x in enumerate(g) if x > 0}
        hits = len(s & rel)
        if kind == "recall":
            out.append(hits / len(rel) if rel else 0.0)
        else:
            out.append(2 * hits / (len(s) + len(rel)) if (s or rel) else 0.0)
    return out


def _ndcg_loop(ranking: list[list[int]], grades: list[list[float]], k: int) -> list[float]:
    out = []
    for items, g in zip(ranking, grades, strict=True):
        dcg = sum(g[c] / math.log2(i + 2) for i, c in enumerate(items[:k]) if c > 0)
        ideal = sorted(g, reverse=True)[:k]
        idcg = sum(x / math.log2(i + 2) for i, x in enumerate(ideal))
        out.append(dcg / idcg if idcg > 0 else 0.0)
    return out


def _random_cases(seed: int, b: int, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[B, N+1] grades 0..3 (column 0 = 0, some rows all 0), slate one-hots, [B, 6] rankings."""
    g = torch.Generator().manual_seed(seed)
    grades = torch.randint(0, 4, (b, n + 1), generator=g).float() * (
        torch.rand(b, n + 1, generator=g) < 0.4
    )
    grades[:, 0] = 0
    grades[0] = 0  # no relevant candidate at all
    slate_hot = torch.rand(b, n + 1, generator=g) < 0.4
    slate_hot[:, 0] = False
    slate_hot[1] = False  # empty slate
    ranking = torch.zeros(b, 6, dtype=torch.long)
    for i in range(b):
        perm = torch.randperm(n, generator=g)[: int(torch.randint(0, 7, (1,), generator=g))] + 1
        ranking[i, : len(perm)] = perm
    return grades, slate_hot, ranking


@pytest.mark.parametrize("kind", ["recall", "f1"])
def test_slate_coverage_vs_loop(kind: str) -> None:
    grades, slate_hot, _ = _random_cases(2, 40, 12)
    sets = [set(torch.nonzero(row).flatten().tolist()) for row in slate_hot]
    ref = torch.tensor(_slate_coverage_loop(sets, grades.tolist(), kind))
    torch.testing.assert_close(ca.slate_coverage(slate_hot, grades, kind), ref, rtol=0, atol=1e-6)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown slate reward"):
        ca.slate_coverage(slate_hot, grades, "precision")  # type: ignore[arg-type]


@pytest.mark.parametrize("k", [1, 3, 5, 8, 20])
def test_ndcg_vs_loop(k: int) -> None:
    grades, _, ranking = _random_cases(3, 40, 12)
    ref = torch.tensor(_ndcg_loop(ranking.tolist(), grades.tolist(), k))
    torch.testing.assert_close(ca.ndcg_at_k(ranking, grades, k), ref, rtol=0, atol=1e-6)


def test_ndcg_hand() -> None:
    # candidates 2 (grade 1) and 5 (grade 2)
    grades = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0, 2.0]])
    l3 = math.log2(3)
    cases = {
        (5, 2): 1.0,
        (2, 5): (1 + 2 / l3) / (2 + 1 / l3),
        (1, 2): (1 / l3) / (2 + 1 / l3),
        (3, 4): 0.0,
    }
    for ranked, value in cases.items():
        got = ca.ndcg_at_k(torch.tensor([list(ranked)]), grades, 5)
        assert got.item() == pytest.approx(value, abs=1e-6)
    # @1 only looks at the first position
    assert ca.ndcg_at_k(torch.tensor([[2, 5]]), grades, 1).item() == pytest.approx(0.5, abs=1e-6)


def test_rewards_match_ir_measures() -> None:
    """nDCG@k and R@k (slate recall) against trec_eval through ir_measures, 60 random cases."""
    rng = random.Random(4)
    qrels, run_rank, run_slate, cases = [], [], [], []
    for q in range(60):
        n = rng.randint(3, 20)
        grades = [0] + [rng.choice([0, 0, 0, 1, 2, 3]) for _ in range(n)]
        grades[rng.randint(1, n)] = rng.randint(1, 3)  # at least one relevant
        ranking = rng.sample(range(1, n + 1), rng.randint(1, min(n, 5)))
        slate = rng.sample(range(1, n + 1), rng.randint(1, min(n, 10)))
        k = rng.choice([1, 3, 5])
        cases.append((grades, ranking, slate, k))
        qid = f"q{q}"
        qrels += [ir_measures.Qrel(qid, f"d{c}", grades[c]) for c in range(1, n + 1)]
        run_rank += [ir_measures.ScoredDoc(qid, f"d{c}", 100.0 - i) for i, c in enumerate(ranking)]
        run_slate += [ir_measures.ScoredDoc(qid, f"d{c}", 100.0 - i) for i, c in enumerate(slate)]
    ndcg_ref = {
        (m.query_id, str(m.measure)): m.value
        for m in ir_measures.iter_calc([nDCG @ 1, nDCG @ 3, nDCG @ 5], qrels, run_rank)
    }
    recall_ref = {m.query_id: m.value for m in ir_measures.iter_calc([R @ 10], qrels, run_slate)}
    for q, (grades, ranking, slate, k) in enumerate(cases):
        g = grades_tensor([grades[1:]])
        ours = ca.ndcg_at_k(torch.tensor([ranking]), g, k).item()
        assert ours == pytest.approx(ndcg_ref[(f"q{q}", str(nDCG @ k))], abs=1e-6), (
            grades,
            ranking,
            k,
        )
        hot = torch.zeros_like(g, dtype=torch.bool)
        hot[0, slate] = True
        assert ca.slate_coverage(hot, g).item() == pytest.approx(recall_ref[f"q{q}"], abs=1e-6), (
            grades,
            slate,
        )


def test_penalize_invalid() -> None:
    r = torch.tensor([0.5, 1.0, 0.0, 0.25])
    valid = torch.tensor([True, False, False, True])
    assert torch.equal(ca.penalize_invalid(r, valid, -0.5), torch.tensor([0.5, -0.5, -0.5, 0.25]))
    assert torch.equal(ca.penalize_invalid(r, valid, 0.0), torch.tensor([0.5, 0.0, 0.0, 0.25]))


def test_phase_rewards_end_to_end() -> None:
    texts = [
        "<SLATE>[1] [2] [3]</SLATE><RANK>[2]</RANK>",  # both valid
        "<SLATE>[5] [2] [1]</SLATE><RANK>[5] > [2]</RANK>",  # perfect ranking
        "<SLATE>[1] [2] [3]</SLATE><RANK>[2] > [9]</RANK>",  # rank_unknown_number: rank invalid
        "I think <SLATE>[2] [5]</SLATE><RANK>[2]</RANK>",  # leading_text: both invalid
    ]
    parsed = [parse_completion(t, 5, 10, 5) for t in texts]
    grades = [[0, 1, 0, 0, 1]] * 4  # candidates 2 and 5 relevant
    out = phase_rewards(parsed, grades, slate_reward="recall", rank_k=5, invalid_penalty=-0.5)
    ndcg_one_of_two = 1 / (1 / math.log2(2) + 1 / math.log2(3))
    torch.testing.assert_close(out.slate, torch.tensor([0.5, 1.0, 0.5, -0.5]), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        out.rank, torch.tensor([ndcg_one_of_two, 1.0, -0.5, -0.5]), rtol=0, atol=1e-6
    )
    assert out.slate_valid.tolist() == [True, True, True, False]
    assert out.rank_valid.tolist() == [True, True, False, False]
    assert out.errors == {"rank_unknown_number": 1, "leading_text": 1}
    # F1: 2 |S ∩ R| / (|S| + |R|) = 2 / 5 for the first completion; graded NDCG
    out = phase_rewards(
        parsed[:2], [[0, 1, 0, 0, 2]] * 2, slate_reward="f1", rank_k=5, invalid_penalty=-1.0
    )
    l3 = math.log2(3)
    torch.testing.assert_close(out.slate, torch.tensor([0.4, 2 * 2 / 5]), rtol=0, atol=1e-6)
    torch.testing.assert_close(out.rank, torch.tensor([1 / (2 + 1 / l3), 1.0]), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- loss


def test_clipped_surrogate_hand() -> None:
    ratio = torch.tensor([[1.5, 0.5, 0.5, 1.5, 1.1, 1.5]])
    adv = torch.tensor([[2.0, 2.0, -2.0, -2.0, 3.0, 0.0]])
    old = torch.zeros_like(ratio)
    logp = torch.log(ratio).requires_grad_()
    loss, clipped = ca.clipped_surrogate(logp, old, adv, clip_low=0.2, clip_high=0.2)
    # ρ=1.5,A>0: -1.2A clipped | ρ=.5,A>0: -.5A | ρ=.5,A<0: -.8A clipped | ρ=1.5,A<0: -1.5A | inside | A=0
    expected = torch.tensor([[-1.2 * 2, -0.5 * 2, 0.8 * 2, 1.5 * 2, -1.1 * 3, 0.0]])
    torch.testing.assert_close(loss.detach(), expected, rtol=0, atol=1e-5)
    assert clipped.tolist() == [[True, False, True, False, False, False]]
    # clipped tokens carry no gradient; the others d(-ρA)/dlogp = -ρA
    loss.sum().backward()
    torch.testing.assert_close(
        logp.grad, torch.tensor([[0.0, -1.0, 0.0, 3.0, -3.3, 0.0]]), rtol=0, atol=1e-5
    )
    # asymmetric (clip-higher): ε_high = 0.28 lets ρ = 1.25 through unclipped
    loss, clipped = ca.clipped_surrogate(
        torch.log(torch.tensor([[1.25, 1.5]])), torch.zeros(1, 2), torch.ones(1, 2), 0.2, 0.28
    )
    torch.testing.assert_close(loss, torch.tensor([[-1.25, -1.28]]), rtol=0, atol=1e-6)
    assert clipped.tolist() == [[False, True]]


def test_kl_k3() -> None:
    g = torch.Generator().manual_seed(5)
    logp, ref = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    assert (ca.kl_k3(logp, ref) >= 0).all()
    assert torch.equal(ca.kl_k3(logp, logp), torch.zeros_like(logp))
    # r = ref - logp = ln 2: 2 - ln 2 - 1
    assert ca.kl_k3(torch.zeros(1), torch.tensor([math.log(2)])).item() == pytest.approx(
        1 - math.log(2), abs=1e-7
    )


def test_loss_normalizer_hand() -> None:
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
    assert ca.loss_normalizer(mask, "token_mean", 10).item() == 7
    assert ca.loss_normalizer(mask, "seq_mean", 10).item() == 3
    assert ca.loss_normalizer(mask, "dr_grpo", 10).item() == 30
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        ca.loss_normalizer(mask, "sum", 10)  # type: ignore[arg-type]
    token_loss = torch.tensor(
        [[3.0, 3.0, 3.0, 99.0], [1.0, 2.0, 99.0, 99.0], [0.0, 0.0, 99.0, 99.0]]
    )
    n = ca.loss_normalizer(mask, "seq_mean", 10)
    assert ca.aggregate_loss(token_loss, mask, "seq_mean", n).item() == pytest.approx(
        (3 + 1.5 + 0) / 3
    )
    n = ca.loss_normalizer(mask, "token_mean", 10)
    assert ca.aggregate_loss(token_loss, mask, "token_mean", n).item() == pytest.approx(12 / 7)
    n = ca.loss_normalizer(mask, "dr_grpo", 10)
    assert ca.aggregate_loss(token_loss, mask, "dr_grpo", n).item() == pytest.approx(12 / 30)


@pytest.mark.parametrize("mode", ["token_mean", "seq_mean", "dr_grpo"])
def test_micro_batch_split_gives_same_loss_and_gradient(mode: str) -> None:
    g = torch.Generator().manual_seed(6)
    b, t = 7, 9
    lengths = torch.tensor([9, 2, 5, 1, 7, 3, 6])
    mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
    old = torch.randn(b, t, generator=g, dtype=torch.float64)
    adv = torch.randn(b, t, generator=g, dtype=torch.float64) * mask
    base = old + 0.3 * torch.randn(b, t, generator=g, dtype=torch.float64)  # ratios partly clipped
    norm = ca.loss_normalizer(mask, mode, max_completion_len=t)  # type: ignore[arg-type]

    logp = base.clone().requires_grad_()
    token_loss, _ = ca.clipped_surrogate(logp, old, adv)
    one_pass = ca.aggregate_loss(token_loss, mask, mode, norm)  # type: ignore[arg-type]
    one_pass.backward()

    split = base.clone().requires_grad_()
    total = torch.zeros((), dtype=torch.float64)
    naive = torch.zeros((), dtype=torch.float64)
    for lo, hi in [(0, 2), (2, 5), (5, 7)]:
        width = int(lengths[lo:hi].max())  # each micro-batch trimmed to its own padding
        m = mask[lo:hi, :width]
        tl, _ = ca.clipped_surrogate(split[lo:hi, :width], old[lo:hi, :width], adv[lo:hi, :width])
        part = ca.aggregate_loss(tl, m, mode, norm)  # type: ignore[arg-type]
        part.backward()
        total = total + part.detach()
        naive = naive + ca.aggregate_loss(tl.detach(), m, mode, ca.loss_normalizer(m, mode, width))  # type: ignore[arg-type]
    torch.testing.assert_close(total, one_pass.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(split.grad, logp.grad, rtol=1e-12, atol=1e-12)
    assert (logp.grad[~mask] == 0).all() and logp.grad.abs().sum() > 0
    # normalizing each micro-batch by itself would not give the same loss (the test has teeth)
    assert not torch.allclose(naive, one_pass.detach())


# ----------------------------------------------------------------------------- diagnostics


def test_phase_error_counts_hand() -> None:
    # example 0: relevant 1, 3, 5; slate {1, 2, 3}; ranking [2, 1]
    # example 1: relevant 2 (grade 2); no slate, no ranking (padding only)
    grades = torch.tensor([[0, 1, 0, 1, 0, 1], [0, 0, 2, 0, 0, 0]], dtype=torch.float32)
    slate_hot = torch.zeros(2, 6, dtype=torch.bool)
    slate_hot[0, [1, 2, 3]] = True
    ranking = torch.tensor([[2, 1], [0, 0]])
    # k = 1: top {2}; ex 0 misses 1, 3 (in the slate: rank drop) and 5 (slate miss); ex 1 misses 2
    assert ca.phase_error_counts(slate_hot, ranking, grades, k=1).tolist() == [4, 2, 2]
    # k = 2: top {2, 1}; ex 0 misses 3 (rank drop) and 5 (slate miss)
    assert ca.phase_error_counts(slate_hot, ranking, grades, k=2).tolist() == [4, 2, 1]
    # nothing missed
    full = torch.ones(1, 3, dtype=torch.bool)
    assert ca.phase_error_counts(full, torch.tensor([[2, 1]]), torch.tensor([[0.0, 1.0, 1.0]]), k=5).tolist() == [2, 0, 0]


def test_phase_error_counts_match_error_analysis() -> None:
    from fgrpo.evaluation.metrics import error_analysis

    rng = random.Random(0)
    rankings, slates, grades = [], [], []
    for _ in range(40):
        n = rng.randint(3, 12)
        g = [rng.choice([0, 0, 1, 2]) for _ in range(n)]
        g[rng.randrange(n)] = 1
        slate = rng.sample(range(1, n + 1), rng.randint(0, n))
        ranking = rng.sample(slate, rng.randint(0, len(slate)))
        rankings.append(ranking), slates.append(slate), grades.append(g)
    g_t = grades_tensor(grades)
    hot = torch.zeros_like(g_t, dtype=torch.bool)
    rank_t = torch.zeros(len(rankings), max(map(len, rankings)), dtype=torch.long)
    for i, (s, r) in enumerate(zip(slates, rankings, strict=True)):
        hot[i, s] = True
        rank_t[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    for k in (1, 3, 5):
        ref = error_analysis(rankings, slates, grades, k=k)
        got = ca.phase_error_counts(hot, rank_t, g_t, k).tolist()
        assert got == [ref["relevant"], ref["slate_miss_count"], ref["rank_drop_count"]]


def test_phase_rewards_error_counts_treat_invalid_phases_as_empty() -> None:
    texts = [
        "<SLATE>[1] [2] [5]</SLATE><RANK>[2]</RANK>",  # 5 in the slate, ranked out at k=1: rank drop
        "<SLATE>[1] [2] [3]</SLATE><RANK>[2] > [9]</RANK>",  # rank invalid: 2 rank drop, 5 slate miss
        "I think <SLATE>[2] [5]</SLATE><RANK>[2]</RANK>",  # both invalid: 2 slate misses
    ]
    parsed = [parse_completion(t, 5, 10, 5) for t in texts]
    out = phase_rewards(parsed, [[0, 1, 0, 0, 1]] * 3, rank_k=1)
    assert out.error_counts is not None and out.error_counts.tolist() == [6, 3, 2]


def test_advantage_spread_hand() -> None:
    adv = torch.tensor([[1.0, -1.0], [0.0, 0.0]])
    std, group_std = ca.advantage_spread(adv)
    assert std.item() == pytest.approx(math.sqrt(0.5))  # values 1, -1, 0, 0: variance 2/4
    assert group_std.item() == pytest.approx(0.5)  # groups' stds 1 and 0


def test_within_group_correlation_hand() -> None:
    x = torch.tensor([[1.0, 0, 0, 1], [1, 1, 1, 1], [0, 1, 2, 3], [1, 0, 0, 0]])
    y = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 1], [3, 2, 1, 0], [1, 1, 0, 0]])
    # groups: +1, undefined (x flat), -1, and 0.5 / sqrt(0.75 * 1) = 1/sqrt(3)
    mean, n = ca.within_group_correlation(x, y)
    assert n.item() == 3
    assert mean.item() == pytest.approx((1 - 1 + 1 / math.sqrt(3)) / 3)
    mean, n = ca.within_group_correlation(x[1:2], y[1:2])
    assert n.item() == 0 and math.isnan(mean.item())


def test_within_group_correlation_vs_numpy() -> None:
    import numpy as np

    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 16, generator=g, dtype=torch.float64)
    y = 0.5 * x + torch.rand(6, 16, generator=g, dtype=torch.float64)
    y[4] = 0.3  # flat: left out
    mean, n = ca.within_group_correlation(x, y)
    ref = [np.corrcoef(a, b)[0, 1] for i, (a, b) in enumerate(zip(x.numpy(), y.numpy(), strict=True)) if i != 4]
    assert n.item() == 5 and mean.item() == pytest.approx(float(np.mean(ref)), abs=1e-12)
