"""F-GRPO's math: rewards, group-relative advantages, the clipped surrogate, aggregation.

Pure functions over tensors, vectorized over prompts x rollouts, no config objects.
Shape letters, used in comments throughout:

    P  prompts in a batch          G  rollouts per prompt (the group)
    B  = P * G completions         T  completion tokens (padded)
    N  candidates in a pool        K  ranked positions kept (padded)

Candidate numbers are 1-based; index 0 is padding everywhere, so ``grades[:, 0] == 0``
and a padded ranking slot gathers a zero gain.

Sources: group-relative advantages (Shao et al. 2024, GRPO); no division by the group
std and a constant loss normalizer (Liu et al. 2025, Dr. GRPO); clipped surrogate
(Schulman et al. 2017, PPO); the k3 KL estimator (Schulman 2020); the two-phase
factorization (Surana et al. 2026, F-GRPO).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

# ---------------------------------------------------------------- rewards


def slate_coverage(
    slate_hot: torch.Tensor, grades: torch.Tensor, kind: Literal["recall", "f1"] = "recall"
) -> torch.Tensor:
    """Order-invariant coverage of the relevant set by the slate.

    slate_hot: [B, N+1] bool, candidate k in the slate; grades: [B, N+1], > 0 relevant.
    recall = |S ∩ R| / |R|;  f1 = 2 |S ∩ R| / (|S| + |R|).  Returns [B].
    """
    relevant = grades > 0  # [B, N+1]
    hits = (slate_hot & relevant).sum(-1).float()  # [B]
    n_rel = relevant.sum(-1).float()
    if kind == "recall":
        return hits / n_rel.clamp(min=1)
    if kind == "f1":
        return 2 * hits / (slate_hot.sum(-1).float() + n_rel).clamp(min=1)
    raise ValueError(f"unknown slate reward kind {kind!r}")


def ndcg_at_k(ranking: torch.Tensor, grades: torch.Tensor, k: int) -> torch.Tensor:
    """NDCG@k with linear gains and log2 discount (trec_eval's ``ndcg_cut``).

    ranking: [B, K] long, candidate numbers best first, 0 = empty slot;
    grades: [B, N+1] float, grade of each candidate (column 0 is 0). Returns [B].
    """
    ranking = ranking[:, :k]  # [B, k']
    kk = ranking.shape[1]
    discount = 1.0 / torch.log2(torch.arange(2, kk + 2, dtype=torch.float32, device=grades.device))  # [k']
    gains = grades.float().gather(1, ranking)  # [B, k']
    dcg = (gains * discount).sum(-1)  # [B]
    ideal = grades.float().topk(min(k, grades.shape[1]), dim=-1).values  # [B, k]
    ideal_discount = 1.0 / torch.log2(torch.arange(2, ideal.shape[1] + 2, dtype=torch.float32, device=grades.device))
    idcg = (ideal * ideal_discount).sum(-1)
    return torch.where(idcg > 0, dcg / idcg.clamp(min=1e-12), torch.zeros_like(dcg))


def penalize_invalid(reward: torch.Tensor, valid: torch.Tensor, penalty: float) -> torch.Tensor:
    """An invalid phase earns ``penalty`` in place of its reward. [B] -> [B]."""
    return torch.where(valid, reward, torch.full_like(reward, penalty))


# ---------------------------------------------------------------- advantages


def group_advantages(rewards: torch.Tensor, scale_by_std: bool = False, eps: float = 1e-6) -> torch.Tensor:
    """Group-relative advantage: reward minus its group mean (optionally over the group std).

    rewards: [P, G] -> [P, G]. Dr. GRPO drops the std division (it biases updates toward
    groups of near-equal reward); ``scale_by_std=True`` restores GRPO's original form.
    """
    adv = rewards - rewards.mean(dim=1, keepdim=True)
    if scale_by_std:
        adv = adv / (rewards.std(dim=1, keepdim=True, unbiased=True) + eps)
    return adv


def fgrpo_token_advantages(
    r_slate: torch.Tensor,
    r_rank: torch.Tensor,
    slate_mask: torch.Tensor,
    rank_mask: torch.Tensor,
    rank_weight: float = 1.0,
    scale_by_std: bool = False,
) -> torch.Tensor:
    """F-GRPO: each phase's own group advantage on that phase's tokens only.

    r_slate, r_rank: [P, G]; slate_mask, rank_mask: [B, T] bool (B = P*G, group-major).
    Token advantage = A_slate on slate tokens + λ·A_rank on rank tokens. Returns [B, T].
    (λ here is the weight of L_rank in L = L_slate + λ·L_rank.)
    """
    a_slate = group_advantages(r_slate, scale_by_std).reshape(-1, 1)  # [B, 1]
    a_rank = group_advantages(r_rank, scale_by_std).reshape(-1, 1)  # [B, 1]
    return a_slate * slate_mask + rank_weight * a_rank * rank_mask  # [B, T]


def grpo_token_advantages(
    r_slate: torch.Tensor,
    r_rank: torch.Tensor,
    slate_mask: torch.Tensor,
    rank_mask: torch.Tensor,
    rank_weight: float = 1.0,
    scale_by_std: bool = False,
) -> torch.Tensor:
    """GRPO baseline: one joint reward R = R_slate + λ·R_rank, one advantage on every token."""
    a_joint = group_advantages(r_slate + rank_weight * r_rank, scale_by_std).reshape(-1, 1)  # [B, 1]
    return a_joint * (slate_mask | rank_mask)  # [B, T]


AdvantageFn = Callable[..., torch.Tensor]

#: ``advantage_estimator`` config value -> function; both share one signature.
ADVANTAGE_ESTIMATORS: dict[str, AdvantageFn] = {
    "fgrpo": fgrpo_token_advantages,
    "grpo": grpo_token_advantages,
}


def zero_variance_fraction(rewards: torch.Tensor, tol: float = 1e-8) -> torch.Tensor:
    """Share of groups whose rewards are all equal (no learning signal). [P, G] -> scalar."""
    spread = rewards.max(dim=1).values - rewards.min(dim=1).values
    return (spread <= tol).float().mean()


# ---------------------------------------------------------------- diagnostics


def phase_error_counts(
    slate_hot: torch.Tensor, ranking: torch.Tensor, grades: torch.Tensor, k: int
) -> torch.Tensor:
    """Where the relevant candidates missing from the top k were lost, pooled over the batch.

    slate_hot: [B, N+1] bool; ranking: [B, K] long, 0 = empty slot; grades: [B, N+1].
    Returns [3] long: (relevant, slate miss = missed and not in the slate, rank drop =
    missed but in the slate), the counts of :func:`fgrpo.evaluation.metrics.error_analysis`.
    An invalid phase should come in empty (no slate, no ranking), as evaluation scores it.
    """
    relevant = grades > 0  # [B, N+1]
    top = torch.zeros_like(relevant).scatter_(1, ranking[:, :k], True)  # [B, N+1]
    top[:, 0] = False  # padding slots scattered into column 0
    missed = relevant & ~top
    slate_miss = (missed & ~slate_hot).sum()
    rank_drop = (missed & slate_hot).sum()
    return torch.stack([relevant.sum(), slate_miss, rank_drop])


def advantage_spread(adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(std over the whole batch, mean over groups of the within-group std) of one phase's
    advantages; population std (divisor n). adv: [P, G] -> two scalars."""
    return adv.std(correction=0), adv.std(dim=1, correction=0).mean()


def within_group_correlation(
    x: torch.Tensor, y: torch.Tensor, tol: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean Pearson correlation of ``x`` and ``y`` within each group, over the groups where
    both vary (max - min > ``tol``), and how many groups that is. x, y: [P, G] -> (scalar,
    scalar long); the mean is NaN when no group qualifies."""
    dx = x - x.mean(dim=1, keepdim=True)
    dy = y - y.mean(dim=1, keepdim=True)
    defined = (x.amax(1) - x.amin(1) > tol) & (y.amax(1) - y.amin(1) > tol)  # [P]
    denom = (dx.square().sum(1) * dy.square().sum(1)).sqrt()
    corr = (dx * dy).sum(1) / torch.where(defined, denom, torch.ones_like(denom))  # [P]
    n = defined.sum()
    mean = corr[defined].mean() if bool(n) else torch.tensor(float("nan"))
    return mean, n


# ---------------------------------------------------------------- loss


def clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO clipped policy-gradient loss and where clipping was active.

    All [B, T]. loss = -min(ρ·A, clip(ρ, 1-ε_low, 1+ε_high)·A), ρ = exp(logp - old_logp).
    """
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high) * advantages
    loss = -torch.minimum(unclipped, clipped)
    was_clipped = (clipped < unclipped).detach()
    return loss, was_clipped


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(π || π_ref): exp(r) - r - 1, r = ref_logp - logp (≥ 0)."""
    r = ref_logp - logp
    return torch.exp(r) - r - 1


LossAggregation = Literal["token_mean", "seq_mean", "dr_grpo"]


def loss_normalizer(mask: torch.Tensor, mode: LossAggregation, max_completion_len: int) -> torch.Tensor:
    """The constant that turns a sum of token losses into the aggregated loss.

    Computed once over the *whole* batch (mask [B, T]) so that summing
    :func:`aggregate_loss` over any split into micro-batches gives the same loss and
    gradient as one pass over the batch.
    - token_mean: number of completion tokens in the batch (DAPO's token-level mean);
    - seq_mean:   number of sequences (each sequence's tokens pre-divided by its length);
    - dr_grpo:    number of sequences × the maximum completion length (Dr. GRPO).
    """
    if mode == "token_mean":
        return mask.sum().clamp(min=1).float()
    n_seq = torch.tensor(float(mask.shape[0]))
    if mode == "seq_mean":
        return n_seq
    if mode == "dr_grpo":
        return n_seq * max_completion_len
    raise ValueError(f"unknown loss aggregation {mode!r}")


def aggregate_loss(
    token_loss: torch.Tensor, mask: torch.Tensor, mode: LossAggregation, normalizer: torch.Tensor
) -> torch.Tensor:
    """Sum of masked token losses over the global ``normalizer``. token_loss, mask: [b, T]."""
    mask = mask.float()
    if mode == "seq_mean":
        per_seq = (token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1)  # [b]
        return per_seq.sum() / normalizer
    return (token_loss * mask).sum() / normalizer
