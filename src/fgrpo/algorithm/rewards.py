"""From parsed completions to per-phase rewards: the glue between text and tensors."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from fgrpo.algorithm import core_algos
from fgrpo.format.completion import ParsedCompletion


@dataclass
class PhaseRewards:
    slate: torch.Tensor  # [B] penalized slate reward
    rank: torch.Tensor  # [B] penalized rank reward
    slate_valid: torch.Tensor  # [B] bool
    rank_valid: torch.Tensor  # [B] bool
    errors: Counter[str]
    # [3] long: relevant, slate miss, rank drop at rank_k, an invalid phase counted empty
    error_counts: torch.Tensor | None = None


def grades_tensor(grades: list[list[int]]) -> torch.Tensor:
    """[B, N+1] float grades; column 0 (padding) and absent candidates are 0."""
    width = max(len(g) for g in grades) + 1
    out = torch.zeros(len(grades), width)
    for i, g in enumerate(grades):
        out[i, 1 : len(g) + 1] = torch.tensor(g, dtype=torch.float32)
    return out


def phase_rewards(
    parsed: list[ParsedCompletion],
    grades: list[list[int]],
    slate_reward: str = "recall",
    rank_k: int = 5,
    invalid_penalty: float = -0.5,
) -> PhaseRewards:
    """Slate coverage and NDCG@k for B completions; ``grades[i][k-1]`` grades candidate k."""
    g = grades_tensor(grades)  # [B, N+1]
    b, width = g.shape
    slate_hot = torch.zeros(b, width, dtype=torch.bool)
    k_max = max([len(p.ranking) for p in parsed] + [1])
    ranking = torch.zeros(b, k_max, dtype=torch.long)
    for i, p in enumerate(parsed):
        if p.slate:
            slate_hot[i, p.slate] = True
        if p.ranking:
            ranking[i, : len(p.ranking)] = torch.tensor(p.ranking)
    slate_valid = torch.tensor([p.slate_valid for p in parsed], dtype=torch.bool)
    rank_valid = torch.tensor([p.rank_valid for p in parsed], dtype=torch.bool)
    r_slate = core_algos.slate_coverage(slate_hot, g, slate_reward)  # type: ignore[arg-type]
    r_rank = core_algos.ndcg_at_k(ranking, g, rank_k)
    errors: Counter[str] = Counter(e for p in parsed for e in p.errors)
    counts = core_algos.phase_error_counts(
        slate_hot & slate_valid[:, None], ranking * rank_valid[:, None], g, rank_k
    )  # as evaluation scores an invalid phase: empty
    return PhaseRewards(
        slate=core_algos.penalize_invalid(r_slate, slate_valid, invalid_penalty),
        rank=core_algos.penalize_invalid(r_rank, rank_valid, invalid_penalty),
        slate_valid=slate_valid,
        rank_valid=rank_valid,
        errors=errors,
        error_counts=counts,
    )
