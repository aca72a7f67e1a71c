"""fgrpo.integrations.verl: the phase layout in token_level_rewards, and the estimator called
through verl's own registry and compute_advantage, against fgrpo_token_advantages.

verl 0.9.1 pins transformers < 5.11, so it lives in its own environment (.venv-verl, built
by scripts/setup_verl_env.sh, which scripts/test.sh runs). Where verl is not importable, the verl tests re-run this file in
that environment, so they run, not skip, wherever the test set-up was run.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from fgrpo.algorithm.core_algos import fgrpo_token_advantages, grpo_token_advantages
from fgrpo.format.spans import phase_masks
from fgrpo.integrations import verl as fv

REPO = Path(__file__).resolve().parents[1]
VERL_PYTHON = REPO / ".venv-verl" / "bin" / "python"
HAVE_VERL = importlib.util.find_spec("verl") is not None
P, G, L = 3, 4, 7
PENALTY = fv.LAYOUT.invalid_penalty


def synthetic_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Group-major rewards, slate counts and lengths, with zero rewards, penalties, empty
    rank phases and an empty response among them."""
    gen = torch.Generator().manual_seed(seed)
    choices = torch.tensor([0.0, 0.25, 1 / 3, 0.5, 1.0, PENALTY])
    r_slate = choices[torch.randint(0, len(choices), (P * G,), generator=gen)]
    r_rank = choices[torch.randint(0, len(choices), (P * G,), generator=gen)]
    lengths = torch.randint(2, L + 1, (P * G,), generator=gen)
    n_slate = (torch.rand(P * G, generator=gen) * (lengths - 1)).long() + 1  # 1..length-1
    n_slate[[2, 7]] = lengths[[2, 7]]  # no rank-phase token: R_rank is the penalty
    r_rank[[2, 7]] = PENALTY
    r_slate[3] = 0.0  # a zero slate reward on the last slate token
    lengths[10], n_slate[10], r_slate[10], r_rank[10] = 0, 0, PENALTY, PENALTY  # nothing generated
    return {"r_slate": r_slate, "r_rank": r_rank, "n_slate": n_slate, "lengths": lengths}


def response_mask(lengths: torch.Tensor) -> torch.Tensor:
    return (torch.arange(L).unsqueeze(0) < lengths.unsqueeze(1)).long()  # [B, L]


def test_layout_round_trips_bit_for_bit() -> None:
    b = synthetic_batch()
    tokens = fv.place_phase_rewards(b["r_slate"], b["r_rank"], b["n_slate"], b["lengths"], L)
    assert tokens.shape == (P * G, L) and tokens.dtype == torch.float32
    # the row sum (verl's logged score) is R_slate + R_rank where both are written
    assert float(tokens[0].sum()) == float(b["r_slate"][0] + b["r_rank"][0])
    assert torch.signbit(tokens[3, b["n_slate"][3] - 1]) and tokens[3].abs().sum() == abs(b["r_rank"][3])
    r_slate, r_rank, n_slate = fv.read_phase_rewards(tokens, response_mask(b["lengths"]))
    assert torch.equal(r_slate, b["r_slate"]) and not torch.signbit(r_slate[3])  # the -0.0 marker reads as 0
    assert torch.equal(r_rank, b["r_rank"])
    keep = b["lengths"] > 0
    assert torch.equal(n_slate[keep], b["n_slate"][keep])


def test_layout_refuses_a_valid_ranking_without_rank_tokens() -> None:
    b = synthetic_batch()
    b["r_rank"][2] = 1.0
    with pytest.raises(ValueError, match="row 2: a valid ranking with no rank-phase token"):
        fv.place_phase_rewards(b["r_slate"], b["r_rank"], b["n_slate"], b["lengths"], L)


def test_compute_score_and_token_boundary_on_the_tiny_tokenizer(tiny_tok) -> None:
    """The reward function's boundary, turned into tokens as the reward manager does."""
    from fgrpo.format.spans import slate_token_counts

    text = "<SLATE>[2] [1]</SLATE><RANK>[2] > [1]</RANK>"
    out = fv.compute_score("toy", text, "[1, 2, 0]")
    assert out["slate_reward"] == 1.0 and out["rank_reward"] == 1.0 and out["score"] == 2.0
    assert out["slate_end"] == text.index("<RANK>")
    ids = tiny_tok(text, add_special_tokens=False)["input_ids"] + [tiny_tok.eos_token_id]
    decoded = tiny_tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    assert slate_token_counts(tiny_tok, [ids], [decoded], [fv.compute_score("toy", decoded, [1, 2, 0])["slate_end"]]) == [4]
    with pytest.raises(ValueError, match="ground_truth must be a non-empty list"):
        fv.compute_score("toy", text, "[]")


def _shuffled_verl_inputs(seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, np.ndarray, torch.Tensor]:
    b = synthetic_batch(seed)
    tokens = fv.place_phase_rewards(b["r_slate"], b["r_rank"], b["n_slate"], b["lengths"], L)
    mask = response_mask(b["lengths"])
    uids = np.array([f"uid-{p}" for p in (7, 3, 5) for _ in range(G)], dtype=object)
    perm = torch.randperm(P * G, generator=torch.Generator().manual_seed(seed + 1))  # verl may reorder rows
    return b, tokens[perm], mask[perm], uids[perm.numpy()], perm


def expected(b: dict[str, torch.Tensor], perm: torch.Tensor, uids: np.ndarray, fn, scale: bool) -> torch.Tensor:
    """fgrpo's estimator on the batch as verl hands it (rows ``perm`` of ``b``), grouped by
    uid with each group's rows in the order they come (a plain loop), then put back."""
    seen: list[str] = []
    for u in uids:
        if u not in seen:
            seen.append(u)
    order = torch.tensor([i for u in seen for i in range(len(uids)) if uids[i] == u])
    rows = perm[order]  # group-major rows of b
    slate_mask, rank_mask = phase_masks(b["n_slate"][rows], b["lengths"][rows], L)
    adv = fn(b["r_slate"][rows].view(P, G), b["r_rank"][rows].view(P, G), slate_mask, rank_mask, fv.LAYOUT.rank_weight, scale)
    out = torch.empty_like(adv)
    out[order] = adv
    return out


@pytest.fixture(scope="module")
def verl_venv_outcomes() -> dict[str, str]:
    """This file run once in .venv-verl: test name -> PASSED / FAILED / ..."""
    if not VERL_PYTHON.exists():
        pytest.skip("verl is not installed here and .venv-verl is missing (bash scripts/setup_verl_env.sh builds it)")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(VERL_PYTHON), "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(Path(__file__).resolve())],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    outcomes = {}
    for line in proc.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR", "SKIPPED") and "::" in rest:
            outcomes[rest.split("::", 1)[1].split(" ")[0]] = word
    outcomes["_log"] = proc.stdout[-4000:] + proc.stderr[-2000:]
    return outcomes


def ran_in_verl_venv(request: pytest.FixtureRequest) -> bool:
    """Here verl is missing: the test's outcome in .venv-verl (it must have passed there)."""
    if HAVE_VERL:
        return False
    outcomes = request.getfixturevalue("verl_venv_outcomes")
    assert outcomes.get(request.node.name) == "PASSED", outcomes["_log"]
    return True


@pytest.mark.parametrize("name,fn,scale", [("fgrpo", fgrpo_token_advantages, False), ("fgrpo", fgrpo_token_advantages, True),
                                           ("fgrpo_grpo", grpo_token_advantages, False)])
def test_estimator_through_verls_registry_equals_fgrpo(request, name: str, fn, scale: bool) -> None:
    if ran_in_verl_venv(request):
        return
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    fv.register_with_verl()
    fv.register_with_verl()  # idempotent
    b, tokens, mask, uids, perm = _shuffled_verl_inputs()
    config = AlgoConfig(adv_estimator=name, norm_adv_by_std_in_grpo=scale)
    adv, returns = get_adv_estimator_fn(name)(token_level_rewards=tokens, response_mask=mask, index=uids, config=config)
    want = expected(b, perm, uids, fn, scale)
    assert torch.equal(adv, want) and torch.equal(returns, want)
    assert (adv[~mask.bool()] == 0).all()


def test_compute_advantage_of_verls_trainer_gives_fgrpo_advantages(request) -> None:
    """verl's own ray_trainer.compute_advantage on a DataProto, as its training loop calls it."""
    if ran_in_verl_venv(request):
        return
    from verl import DataProto
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.ray_trainer import compute_advantage

    fv.register_with_verl()
    b, tokens, mask, uids, perm = _shuffled_verl_inputs(seed=3)
    data = DataProto.from_dict(tensors={"token_level_rewards": tokens, "response_mask": mask}, non_tensors={"uid": uids})
    config = AlgoConfig(adv_estimator="fgrpo", norm_adv_by_std_in_grpo=False)
    out = compute_advantage(data, adv_estimator="fgrpo", norm_adv_by_std_in_grpo=False, config=config)
    assert torch.equal(out.batch["advantages"], expected(b, perm, uids, fgrpo_token_advantages, False))
    with pytest.raises(ValueError, match="use_kl_in_reward=False"):
        compute_advantage(data, adv_estimator="fgrpo", config=AlgoConfig(adv_estimator="fgrpo", use_kl_in_reward=True))


def test_reward_manager_assembles_the_layout(request) -> None:
    """The registered reward manager's assemble_rm_scores writes the layout the estimator reads."""
    if ran_in_verl_venv(request):
        return
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    fv.register_with_verl()
    b = synthetic_batch(seed=5)
    data = DataProto.from_dict(tensors={"responses": torch.zeros(P * G, L, dtype=torch.long)})
    scores = list(zip(b["r_slate"].tolist(), b["r_rank"].tolist(), b["n_slate"].tolist(), b["lengths"].tolist(), strict=True))
    tokens = get_reward_manager_cls("fgrpo").assemble_rm_scores(data, scores)
    assert torch.equal(tokens, fv.place_phase_rewards(b["r_slate"], b["r_rank"], b["n_slate"], b["lengths"], L))


def test_converter_writes_verls_dataset_rows(tmp_path) -> None:
    """fgrpo JSONL examples -> verl parquet: chat messages, grades as ground truth, and a
    perfect answer scored 2 by compute_score on the row read back."""
    pq = pytest.importorskip("pyarrow.parquet")
    from fgrpo.data.toy import make_toy_examples
    from fgrpo.format.completion import render_completion

    examples = make_toy_examples(3, pool_size=5, max_relevant=2, seed=1)
    path = tmp_path / "train.parquet"
    assert fv.write_verl_parquet(examples, str(path), 10, 5, "train") == 3
    rows = pq.read_table(path).to_pylist()
    assert [r["extra_info"]["id"] for r in rows] == [ex.id for ex in examples]
    assert [m["role"] for m in rows[0]["prompt"]] == ["system", "user"] and "[5]" in rows[0]["prompt"][1]["content"]
    ex, row = examples[0], rows[0]
    assert fv.grades_of(row["reward_model"]["ground_truth"]) == ex.grades()
    best = sorted(ex.relevant_numbers(), key=lambda k: -ex.relevant_numbers()[k])
    score = fv.compute_score(row["data_source"], render_completion(best, best), row["reward_model"]["ground_truth"])
    assert score["slate_reward"] == 1.0 and score["rank_reward"] == 1.0


def test_reward_manager_scores_a_response_and_counts_its_slate_tokens(request, tiny_tok) -> None:
    """The registered manager's run_single on a DataProto row (tiny tokenizer), then the
    layout it assembles read back by the estimator's reader."""
    if ran_in_verl_venv(request):
        return
    import asyncio

    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    fv.register_with_verl()
    text = "<SLATE>[2] [1]</SLATE><RANK>[2] > [1]</RANK>"
    response = tiny_tok(text, add_special_tokens=False)["input_ids"] + [tiny_tok.eos_token_id]  # 10 tokens
    width = len(response) + 3  # right padding
    responses = torch.tensor([response + [tiny_tok.pad_token_id] * 3])
    prompts = torch.tensor([[5, 6]])
    attention = torch.tensor([[1, 1] + [1] * len(response) + [0] * 3])
    data = DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": attention},
        non_tensors={"data_source": np.array(["fgrpo/toy"], dtype=object),
                     "reward_model": np.array([{"ground_truth": "[1, 2, 0]"}], dtype=object)},
    )  # fmt: skip
    cls = get_reward_manager_cls("fgrpo")
    manager = cls(config=None, tokenizer=tiny_tok, compute_score=None)
    out = asyncio.run(manager.run_single(data))
    assert out["reward_score"] == (1.0, 1.0, 4, len(response))  # <SLATE> [2] [1] </SLATE> | <RANK> ...
    assert out["reward_extra_info"]["score"] == 2.0
    tokens = cls.assemble_rm_scores(data, [out["reward_score"]])
    assert tokens.shape == (1, width) and tokens[0, 3] == 1.0 and tokens[0, len(response) - 1] == 1.0
    r_slate, r_rank, n_slate = fv.read_phase_rewards(tokens, attention[:, 2:])
    assert (r_slate.item(), r_rank.item(), n_slate.item()) == (1.0, 1.0, 4)
