"""F-GRPO through TRL's ``GRPOTrainer`` (``pip install fgrpo[trl]``, TRL 1.16).

:class:`FGRPOTrainer` overrides one method: after TRL has generated and scored the
completions (``_generate_and_score_completions``), it replaces TRL's sequence advantage
``[B]`` with fgrpo's token advantage ``[B, T]``: the completions are parsed, each phase is
rewarded, the phase masks come from the parser's character boundary, and the estimator of
``advantage_estimator`` (``ADVANTAGE_ESTIMATORS``) maps them to one advantage per token.
TRL's ``_compute_loss`` accepts ``[B, T]`` advantages as they are, so every loss type,
the KL term, vLLM generation, PEFT and accelerate's engines are TRL's own and unchanged.

The two phase rewards are also TRL reward functions named ``slate`` and ``rank``, so TRL
logs them under its own metric names: ``rewards/slate/mean``, ``rewards/slate/std``,
``rewards/rank/mean``, ``rewards/rank/std``; ``reward`` is R_slate + λ·R_rank (TRL's
``reward_weights`` = [1, λ]), GRPO's joint reward.

The dataset needs two columns: ``prompt`` (the text fgrpo would prompt with, e.g. from
:func:`trl_rows`) and ``grades`` (``grades[k-1]`` the grade of candidate ``k``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from trl import GRPOConfig, GRPOTrainer

from fgrpo.algorithm import core_algos
from fgrpo.algorithm.rewards import PhaseRewards, phase_rewards
from fgrpo.config.commands import TrainConfig
from fgrpo.data.schema import Example
from fgrpo.format.completion import parse_completion
from fgrpo.format.prompts import render_prompt
from fgrpo.format.spans import decode_completions, phase_masks, slate_token_counts

PHASES = ("slate", "rank")


def _train_option(name: str) -> Any:
    """The field of ``fgrpo train``'s config, its default and help, for :class:`FGRPOConfig`
    (one source of defaults: config/commands.py)."""
    f = TrainConfig.__dataclass_fields__[name]
    return dataclasses.field(default=f.default, metadata=dict(f.metadata))


@dataclasses.dataclass
class FGRPOConfig(GRPOConfig):
    """TRL's ``GRPOConfig`` plus fgrpo's reward and advantage keys (same names, defaults and
    help as ``fgrpo train``). ``scale_rewards`` keeps TRL's meaning: ``"none"`` (the default
    here, fgrpo's Dr. GRPO setting) or ``"group"`` (divide by the group std, fgrpo's
    ``scale_by_std=true``); ``"batch"`` has no fgrpo counterpart and is refused."""

    advantage_estimator: str = _train_option("advantage_estimator")
    rank_weight: float = _train_option("rank_weight")
    max_slate: int = _train_option("max_slate")
    max_rank: int = _train_option("max_rank")
    slate_reward: str = _train_option("slate_reward")
    rank_k: int = _train_option("rank_k")
    invalid_penalty: float = _train_option("invalid_penalty")
    scale_rewards: str = dataclasses.field(
        default="none", metadata={"help": "none: advantages not divided by the group std (Dr. GRPO, fgrpo's default); group: divided."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.advantage_estimator not in core_algos.ADVANTAGE_ESTIMATORS:
            raise ValueError(f"key 'advantage_estimator' must be one of {sorted(core_algos.ADVANTAGE_ESTIMATORS)}, got {self.advantage_estimator!r}")
        if self.scale_rewards not in ("none", "group"):
            raise ValueError(f"key 'scale_rewards' must be 'none' or 'group' with F-GRPO (per-group advantages), got {self.scale_rewards!r}")
        if self.max_rank > self.max_slate:
            raise ValueError(f"key 'max_rank' ({self.max_rank}) must not exceed 'max_slate' ({self.max_slate})")
        # TRL's logged `reward` (and its own, replaced, advantage) is then GRPO's joint reward
        self.reward_weights = [1.0, float(self.rank_weight)]


def trl_rows(tokenizer: Any, examples: list[Example], max_slate: int, max_rank: int) -> dict[str, list[Any]]:
    """Columns of a TRL dataset (``datasets.Dataset.from_dict``) for fgrpo examples: the
    prompt text exactly as ``fgrpo train`` renders it (chat template included, when the
    tokenizer has one), and the grades the rewards need."""
    return {
        "prompt": [render_prompt(tokenizer, ex, max_slate, max_rank) for ex in examples],
        "grades": [ex.grades() for ex in examples],
    }


def completion_lists(completion_ids: torch.Tensor, completion_mask: torch.Tensor) -> list[list[int]]:
    """Each row's tokens up to its mask's length (TRL's mask covers the tokens up to and
    including the first EOS, zero after it). [B, T] -> B lists."""
    lengths = completion_mask.sum(1).tolist()
    return [row[: int(n)].tolist() for row, n in zip(completion_ids, lengths, strict=True)]


def score_completions(
    tokenizer: Any, completions: list[list[int]], grades: list[list[int]], cfg: FGRPOConfig
) -> tuple[PhaseRewards, torch.Tensor, torch.Tensor]:
    """Parse and reward B completions (token ids), with their phase masks.

    Returns the phase rewards ([B] each) and the slate and rank masks ([B, T] bool, T the
    longest completion), exactly as ``fgrpo train``'s step computes them."""
    texts = decode_completions(tokenizer, completions)
    parsed = [parse_completion(t, len(g), cfg.max_slate, cfg.max_rank) for t, g in zip(texts, grades, strict=True)]
    rewards = phase_rewards(parsed, grades, cfg.slate_reward, cfg.rank_k, cfg.invalid_penalty)
    lengths = torch.tensor([len(c) for c in completions])  # [B]
    n_slate = torch.tensor(slate_token_counts(tokenizer, completions, texts, [p.slate_end for p in parsed]))
    slate_mask, rank_mask = phase_masks(n_slate, lengths, max([len(c) for c in completions] + [1]))
    return rewards, slate_mask, rank_mask


def token_advantages(
    rewards: PhaseRewards, slate_mask: torch.Tensor, rank_mask: torch.Tensor, group_size: int, cfg: FGRPOConfig
) -> torch.Tensor:
    """The estimator of ``cfg.advantage_estimator`` on B = P·G group-major completions. [B, T]."""
    estimator = core_algos.ADVANTAGE_ESTIMATORS[cfg.advantage_estimator]
    r_slate = rewards.slate.view(-1, group_size)  # [P, G]
    r_rank = rewards.rank.view(-1, group_size)  # [P, G]
    return estimator(r_slate, r_rank, slate_mask, rank_mask, cfg.rank_weight, cfg.scale_rewards == "group")


class FGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose loss receives fgrpo's per-phase token advantages ``[B, T]``.

    Takes TRL's arguments, with ``args`` an :class:`FGRPOConfig` and no ``reward_funcs``
    (the two phase rewards are the reward functions). Groups may span processes, as in
    TRL: rewards and masks are gathered, the estimator runs on the whole generation batch,
    and each process keeps its rows.
    """

    def __init__(self, model: Any, args: FGRPOConfig, reward_funcs: Any = None, **kwargs: Any) -> None:
        if not isinstance(args, FGRPOConfig):
            raise TypeError(f"FGRPOTrainer needs args=FGRPOConfig(...), got {type(args).__name__}")
        if reward_funcs is not None:
            raise ValueError("FGRPOTrainer's rewards are F-GRPO's two phase rewards (slate, rank); pass no reward_funcs")
        super().__init__(model=model, reward_funcs=[self._phase_reward_fn(p) for p in PHASES], args=args, **kwargs)

    def _phase_reward_fn(self, phase: str) -> Any:
        def reward(completion_ids: list[list[int]], grades: list[list[int]], **_: Any) -> list[float]:
            rewards, _, _ = score_completions(self.processing_class, completion_ids, grades, self.args)
            return getattr(rewards, phase).tolist()

        reward.__name__ = phase  # TRL's metric names: rewards/<name>/mean, rewards/<name>/std
        return reward

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        ids, mask = output["completion_ids"], output["completion_mask"]  # [b, T] local rows
        mode = "train" if self.model.training else "eval"
        group = self.num_generations if mode == "train" else self.num_generations_eval
        rewards, slate_mask, rank_mask = score_completions(
            self.processing_class, completion_lists(ids, mask), [x["grades"] for x in inputs], self.args
        )
        acc, dev, t = self.accelerator, ids.device, ids.shape[1]
        # the whole generation batch (groups may span processes), widened to one width;
        # masks travel as int64 (gloo gathers no bool)
        width = int(acc.gather(torch.tensor([t], device=dev)).max())
        slate_all = acc.gather(_widen(slate_mask, width).long().to(dev)).bool()  # [B, T']
        rank_all = acc.gather(_widen(rank_mask, width).long().to(dev)).bool()
        rewards_all = PhaseRewards(acc.gather(rewards.slate.to(dev)), acc.gather(rewards.rank.to(dev)),
                                   rewards.slate_valid, rewards.rank_valid, rewards.errors)  # fmt: skip
        adv = token_advantages(rewards_all, slate_all, rank_all, group, self.args)  # [B, T']
        rows = slice(acc.process_index * len(inputs), (acc.process_index + 1) * len(inputs))
        output["advantages"] = adv[rows, :t].contiguous()  # [b, T]
        return output


def _widen(mask: torch.Tensor, width: int) -> torch.Tensor:
    """[B, t] -> [B, width] (t <= width), padded with False."""
    return torch.nn.functional.pad(mask, (0, width - mask.shape[1]))
