"""F-GRPO on verl (0.9.1): an advantage estimator, a reward function and a reward manager.

verl calls a registered advantage estimator with ``token_level_rewards`` [B, L],
``response_mask`` [B, L], ``index`` (the group uid of each row) and ``config``; only its
GDPO estimator also receives ``non_tensor_batch``. So the two phase rewards and the phase
boundary travel inside ``token_level_rewards`` itself, in this layout (one row, L valid
response tokens, the first n of them in the slate phase, 1 <= n <= L):

- n < L: R_slate on token n-1 (the last slate token), R_rank on token L-1 (the last token,
  where verl's own reward managers put a score); every other slot is +0.0.
- n = L (no rank-phase token, e.g. no ``</SLATE>``): R_slate on token L-1. The ranking
  is then invalid, so R_rank is the invalid penalty; :class:`PhaseLayout` holds it.
- an R_slate of exactly zero is written as -0.0, so the last slate token is always
  marked: the boundary is the one slot before the last that is non-zero or carries a sign
  bit, and every value read back is the float written, bit for bit.

verl's sequence score (the row sum, logged as ``critic/score``) is then R_slate + R_rank.
The layout holds while ``token_level_rewards`` is ``token_level_scores`` unchanged, i.e.
with ``algorithm.use_kl_in_reward=False`` (the GRPO setting; the KL term goes in the
loss): the estimator refuses the other setting.

The estimator regroups rows by ``index`` (verl may reorder a batch, e.g. by sequence-length
balancing), runs fgrpo's estimator (:data:`~fgrpo.algorithm.core_algos.ADVANTAGE_ESTIMATORS`)
on the group-major batch, and puts the rows back. verl is imported only inside
:func:`register_with_verl`, so this module imports without it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fgrpo.algorithm import core_algos
from fgrpo.algorithm.rewards import phase_rewards
from fgrpo.config.commands import TrainConfig
from fgrpo.format.completion import parse_completion
from fgrpo.format.spans import phase_masks, slate_token_counts

_DEFAULTS = TrainConfig.__dataclass_fields__


@dataclass
class PhaseLayout:
    """The reward settings shared by the reward manager and the estimator (fgrpo train's
    defaults, config/commands.py). Set them with :func:`configure` in every process."""

    max_slate: int = _DEFAULTS["max_slate"].default
    max_rank: int = _DEFAULTS["max_rank"].default
    slate_reward: str = _DEFAULTS["slate_reward"].default
    rank_k: int = _DEFAULTS["rank_k"].default
    invalid_penalty: float = _DEFAULTS["invalid_penalty"].default
    rank_weight: float = _DEFAULTS["rank_weight"].default


LAYOUT = PhaseLayout()


def configure(**settings: Any) -> PhaseLayout:
    """Change :data:`LAYOUT` (``max_slate=``, ``rank_weight=``, ...); unknown keys are errors."""
    for key, value in settings.items():
        if not hasattr(LAYOUT, key):
            raise ValueError(f"unknown fgrpo verl setting {key!r}; known: {sorted(vars(LAYOUT))}")
        setattr(LAYOUT, key, type(getattr(LAYOUT, key))(value))
    return LAYOUT


# ------------------------------------------------------------------ reward


def grades_of(ground_truth: Any) -> list[int]:
    """The grades a parquet row carries (``reward_model.ground_truth``): a JSON list, or a list."""
    grades = json.loads(ground_truth) if isinstance(ground_truth, str) else list(ground_truth)
    if not grades or not all(isinstance(g, int | np.integer) for g in grades):
        raise ValueError(f"ground_truth must be a non-empty list of integer grades, got {ground_truth!r}")
    return [int(g) for g in grades]


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Any = None, **_: Any) -> dict[str, Any]:
    """verl's custom-reward interface (``reward.custom_reward_function``): both phase rewards
    of one completion, and its phase boundary in characters (``slate_end``, -1 when the
    completion has no ``</SLATE>``; :class:`FGRPORewardManager` turns it into tokens).
    ``score`` is GRPO's joint reward R_slate + λ·R_rank."""
    grades = grades_of(ground_truth)
    parsed = parse_completion(solution_str, len(grades), LAYOUT.max_slate, LAYOUT.max_rank)
    r = phase_rewards([parsed], [grades], LAYOUT.slate_reward, LAYOUT.rank_k, LAYOUT.invalid_penalty)
    r_slate, r_rank = float(r.slate[0]), float(r.rank[0])
    return {
        "score": r_slate + LAYOUT.rank_weight * r_rank,
        "slate_reward": r_slate,
        "rank_reward": r_rank,
        "slate_end": -1 if parsed.slate_end is None else parsed.slate_end,
        "format_valid": float(parsed.valid),
    }


# ------------------------------------------------------------------ the layout


def place_phase_rewards(
    r_slate: torch.Tensor, r_rank: torch.Tensor, n_slate: torch.Tensor, lengths: torch.Tensor, width: int
) -> torch.Tensor:
    """[B] rewards, slate-token counts and lengths -> [B, width] float32 token rewards, in
    the module docstring's layout. A row whose rank phase is empty must carry the invalid
    penalty as R_rank (it cannot be written): anything else is an error."""
    b = len(lengths)
    out = torch.zeros(b, width, dtype=torch.float32)
    rows = torch.arange(b)
    n_slate, lengths = n_slate.long(), lengths.long()
    if bool(((n_slate < 1) & (lengths > 0)).any()) or bool((n_slate > lengths).any()):
        raise ValueError("slate token counts must lie in 1..length")
    full = n_slate == lengths  # no rank-phase token
    penalty = torch.tensor(LAYOUT.invalid_penalty, dtype=torch.float32)
    if bool((full & (r_rank.float() != penalty)).any()):
        bad = int(torch.nonzero(full & (r_rank.float() != penalty))[0])
        raise ValueError(f"row {bad}: a valid ranking with no rank-phase token (the token that ends </SLATE> "
                         "carries the whole ranking); this tokenizer cannot be trained with F-GRPO on verl")
    slate_val = torch.where(r_slate.float() == 0, torch.tensor(-0.0), r_slate.float())  # mark the slot
    has = lengths > 0
    out[rows[has], n_slate[has] - 1] = slate_val[has]
    rank_rows = has & ~full
    out[rows[rank_rows], lengths[rank_rows] - 1] = r_rank.float()[rank_rows]
    return out


def read_phase_rewards(
    token_level_rewards: torch.Tensor, response_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`place_phase_rewards`: (R_slate [B], R_rank [B], slate-token counts [B])."""
    x = token_level_rewards.detach().float().cpu()
    lengths = response_mask.bool().cpu().sum(-1)  # [B]
    pos = torch.arange(x.shape[1]).unsqueeze(0)  # [1, L]
    before_last = pos < (lengths - 1).unsqueeze(1)  # [B, L]
    marked = ((x != 0) | torch.signbit(x)) & before_last
    if bool((marked.sum(-1) > 1).any()):
        raise ValueError("token_level_rewards is not in F-GRPO's layout (more than one marked slot before the last "
                         "token): use fgrpo's reward manager and algorithm.use_kl_in_reward=False")
    has_mark = marked.any(-1)
    last = (lengths - 1).clamp(min=0)
    n_slate = torch.where(has_mark, marked.float().argmax(-1) + 1, lengths)  # [B]
    rows = torch.arange(x.shape[0])
    at_last = x[rows, last]
    r_slate = torch.where(has_mark, x[rows, (n_slate - 1).clamp(min=0)], at_last)
    penalty = torch.full_like(at_last, LAYOUT.invalid_penalty)
    r_rank = torch.where(has_mark, at_last, penalty)
    empty = lengths == 0  # nothing was generated: both phases invalid
    r_slate, r_rank = torch.where(empty, penalty, r_slate), torch.where(empty, penalty, r_rank)
    return r_slate + 0.0, r_rank, n_slate  # + 0.0: a -0.0 marker reads back as the reward 0


# ------------------------------------------------------------------ the estimator


def group_order(index: Any) -> tuple[torch.Tensor, int]:
    """Rows sorted group by group (stable: each group's rows keep their order), and G.
    ``index`` [B]: verl's uid per row. Every group must have the same size."""
    uids = np.asarray(index)
    _, first, group_ids, counts = np.unique(uids, return_index=True, return_inverse=True, return_counts=True)
    if len(set(counts.tolist())) != 1:
        raise ValueError(f"F-GRPO needs groups of one size (rollout.n); got sizes {sorted(set(counts.tolist()))}")
    rank_of_group = np.argsort(np.argsort(first))  # groups in order of first appearance
    order = np.argsort(rank_of_group[group_ids.reshape(-1)], kind="stable")
    return torch.from_numpy(order), int(counts[0])


def fgrpo_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any = None,
    config: Any = None,
    estimator: str = "fgrpo",
    **_: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl advantage estimator (``algorithm.adv_estimator=fgrpo``): fgrpo's token advantage
    from the phase layout. ``config.norm_adv_by_std_in_grpo`` is fgrpo's ``scale_by_std``.
    Returns (advantages, returns), both [B, L], as verl's GRPO does."""
    if index is None:
        raise ValueError("F-GRPO needs verl's group index (non_tensor_batch['uid'])")
    if config is not None and _get(config, "use_kl_in_reward", False):
        raise ValueError("F-GRPO's reward layout needs algorithm.use_kl_in_reward=False (put the KL term in the loss)")
    scale = bool(_get(config, "norm_adv_by_std_in_grpo", False)) if config is not None else False
    r_slate, r_rank, n_slate = read_phase_rewards(token_level_rewards, response_mask)
    order, g = group_order(index)
    lengths = response_mask.bool().cpu().sum(-1)
    slate_mask, rank_mask = phase_masks(n_slate[order], lengths[order], response_mask.shape[1])  # [B, L]
    fn = core_algos.ADVANTAGE_ESTIMATORS[estimator]
    adv_sorted = fn(r_slate[order].view(-1, g), r_rank[order].view(-1, g), slate_mask, rank_mask, LAYOUT.rank_weight, scale)
    adv = torch.empty_like(adv_sorted)
    adv[order] = adv_sorted
    adv = adv.to(device=token_level_rewards.device, dtype=token_level_rewards.dtype)
    return adv, adv


def fgrpo_joint_advantage(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index: Any = None,
                          config: Any = None, **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``algorithm.adv_estimator=fgrpo_grpo``: fgrpo's GRPO baseline (one joint reward) on the same layout."""
    return fgrpo_advantage(token_level_rewards, response_mask, index, config, estimator="grpo", **kw)


def _get(config: Any, key: str, default: Any) -> Any:
    return config.get(key, default) if hasattr(config, "get") else getattr(config, key, default)


# ------------------------------------------------------------------ registration


def register_with_verl() -> None:
    """Register the estimators (``fgrpo``, ``fgrpo_grpo``) and the reward manager (``fgrpo``)
    in verl's registries. Idempotent; call it in each process that computes advantages or
    rewards (examples/verl/fgrpo_reward.py does, being loaded by verl in both)."""
    from verl.experimental.reward_loop.reward_manager import register
    from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, register_adv_est

    if ADV_ESTIMATOR_REGISTRY.get("fgrpo") is not fgrpo_advantage:
        register_adv_est("fgrpo")(fgrpo_advantage)
        register_adv_est("fgrpo_grpo")(fgrpo_joint_advantage)
    if "fgrpo" not in REWARD_MANAGER:
        register("fgrpo")(_reward_manager_class())


def _reward_manager_class() -> type:
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

    class FGRPORewardManager(RewardManagerBase):
        """verl reward manager (``reward.reward_manager.name=fgrpo``): per response, the two
        phase rewards (from ``compute_score`` or the configured custom function) and the
        slate-token count from the parser's boundary; :meth:`assemble_rm_scores` writes
        the batch in the phase layout."""

        def __init__(self, config: Any, tokenizer: Any, compute_score: Any = None, **_: Any) -> None:
            super().__init__(config, tokenizer, compute_score or globals()["compute_score"])

        async def run_single(self, data: Any) -> dict[str, Any]:
            item = data[-1:][0]
            response_ids = item.batch["responses"]
            length = int(item.batch["attention_mask"][-response_ids.shape[-1] :].sum())
            ids = response_ids[:length].tolist()
            text = self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            result = self.compute_score(
                data_source=item.non_tensor_batch.get("data_source", "fgrpo"), solution_str=text,
                ground_truth=item.non_tensor_batch["reward_model"]["ground_truth"],
                extra_info=item.non_tensor_batch.get("extra_info", {}),
            )  # fmt: skip
            end = None if result["slate_end"] < 0 else int(result["slate_end"])
            n_slate = slate_token_counts(self.tokenizer, [ids], [text], [end])[0] if ids else 0
            score = (result["slate_reward"], result["rank_reward"], n_slate, length)
            return {"reward_score": score, "reward_extra_info": {k: v for k, v in result.items() if k != "slate_end"}}

        @classmethod
        def assemble_rm_scores(cls, data: Any, scores: list[Any]) -> torch.Tensor:
            r_slate, r_rank, n_slate, lengths = (torch.tensor(col) for col in zip(*scores, strict=True))
            width = data.batch["responses"].shape[1]
            return place_phase_rewards(r_slate, r_rank, n_slate, lengths, width).to(data.batch["responses"].device)

    return FGRPORewardManager


# ------------------------------------------------------------------ data


def verl_rows(examples: list[Any], max_slate: int, max_rank: int, split: str) -> list[dict[str, Any]]:
    """fgrpo examples -> rows of verl's RL dataset (``data.train_files`` parquet): the chat
    messages fgrpo prompts with (verl applies the model's chat template to ``prompt``), and
    the pool's grades as ``reward_model.ground_truth`` (a JSON list; grades[k-1] grades [k])."""
    from fgrpo.format.prompts import SYSTEM_MESSAGE, prompt_text

    return [
        {
            "data_source": f"fgrpo/{ex.task}",
            "prompt": [{"role": "system", "content": SYSTEM_MESSAGE},
                       {"role": "user", "content": prompt_text(ex, max_slate, max_rank)}],
            "ability": "ranking",
            "reward_model": {"style": "rule", "ground_truth": json.dumps(ex.grades())},
            "extra_info": {"split": split, "index": i, "id": ex.id, "num_candidates": ex.num_candidates},
        }  # fmt: skip
        for i, ex in enumerate(examples)
    ]


def write_verl_parquet(examples: list[Any], path: str, max_slate: int, max_rank: int, split: str) -> int:
    """Write :func:`verl_rows` as a parquet file (needs pyarrow, which verl installs). Returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = verl_rows(examples, max_slate, max_rank, split)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return len(rows)
