"""fgrpo.integrations.trl: TRL's GRPOTrainer with fgrpo's per-phase token advantages.

Runs where TRL is installed (the [trl] extra; scripts/setup_env.sh installs it). On the
same completions, the advantages TRL's loss receives must equal fgrpo's estimator exactly.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("trl", reason="the [trl] extra is not installed (scripts/setup_env.sh installs it)")

from datasets import Dataset  # noqa: E402

from fgrpo.algorithm.core_algos import fgrpo_token_advantages, grpo_token_advantages  # noqa: E402
from fgrpo.algorithm.rewards import phase_rewards  # noqa: E402
from fgrpo.data.toy import make_toy_examples  # noqa: E402
from fgrpo.format.completion import parse_completion  # noqa: E402
from fgrpo.format.spans import phase_masks, slate_token_counts  # noqa: E402
from fgrpo.integrations.trl import FGRPOConfig, FGRPOTrainer, trl_rows  # noqa: E402
from fgrpo.models.loading import load_model, load_tokenizer  # noqa: E402
from fgrpo.trainer.sft import supervised_steps  # noqa: E402

G = 8


def warm_model(sft_steps: int, pool_size: int, seed: int = 0) -> tuple:
    """The tiny Llama after a short supervised warm-up (so that rewards differ in a group)."""
    torch.manual_seed(seed)
    tok, model = load_tokenizer("builtin:tiny-llama"), load_model("builtin:tiny-llama", seed=seed)
    examples = make_toy_examples(256, pool_size=pool_size, max_relevant=2, seed=seed)
    supervised_steps(model, tok, examples, sft_steps, 16, 1e-3, seed=seed, slate_size=3, max_slate=10, max_rank=5)
    return tok, model, examples


def trainer(tok, model, examples, tmp_path, prompts_per_step: int, **kw) -> FGRPOTrainer:
    args = FGRPOConfig(
        output_dir=str(tmp_path), use_cpu=True, report_to=[], save_strategy="no", disable_tqdm=True, seed=0,
        per_device_train_batch_size=prompts_per_step * G, generation_batch_size=prompts_per_step * G,
        num_generations=G, max_completion_length=24, bf16=False, activation_checkpointing=False,
        logging_steps=1, beta=0.0, loss_type="dr_grpo", lr_scheduler_type="constant", **kw,
    )  # fmt: skip
    return FGRPOTrainer(model=model, args=args, train_dataset=Dataset.from_dict(trl_rows(tok, examples, 10, 5)),
                        processing_class=tok)  # fmt: skip


@pytest.fixture(scope="module")
def warm():
    return warm_model(sft_steps=150, pool_size=5)


def fgrpo_reference(tok, inputs: dict, grades: list[list[int]], fn) -> torch.Tensor:
    """fgrpo train's own computation (train_step's phases 2-3) on the completions TRL sampled."""
    lengths = inputs["completion_mask"].sum(1)
    completions = [row[: int(n)].tolist() for row, n in zip(inputs["completion_ids"], lengths, strict=True)]
    texts = tok.batch_decode(completions, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    parsed = [parse_completion(t, len(g), 10, 5) for t, g in zip(texts, grades, strict=True)]
    r = phase_rewards(parsed, grades, "recall", 5, -0.5)
    n_slate = torch.tensor(slate_token_counts(tok, completions, texts, [p.slate_end for p in parsed]))
    slate_mask, rank_mask = phase_masks(n_slate, lengths, inputs["completion_ids"].shape[1])
    return fn(r.slate.view(-1, G), r.rank.view(-1, G), slate_mask, rank_mask, 1.0, False)


@pytest.mark.parametrize("estimator,fn", [("fgrpo", fgrpo_token_advantages), ("grpo", grpo_token_advantages)])
def test_loss_receives_fgrpo_token_advantages_and_logs_both_phases(warm, tmp_path, estimator: str, fn) -> None:
    """A 2-step run through TRL: the loss's advantages equal fgrpo's estimator on the same
    completions, bit for bit, and TRL logs both phase rewards under its metric names."""
    tok, model, examples = warm
    import copy

    tr = trainer(tok, copy.deepcopy(model), examples, tmp_path, prompts_per_step=2, max_steps=2,
                 learning_rate=1e-4, advantage_estimator=estimator)  # fmt: skip
    seen: list[dict] = []
    compute_loss = tr._compute_loss

    def recorded(m, inputs):
        seen.append(dict(inputs))
        return compute_loss(m, inputs)

    tr._compute_loss = recorded
    generate = tr._generate_and_score_completions

    def remember_grades(inputs):  # TRL shuffles the batch's rows in unison before the loss
        out = generate(inputs)
        out["_grades"] = [x["grades"] for x in inputs]
        out["_row"] = torch.arange(len(inputs))
        return out

    tr._generate_and_score_completions = remember_grades
    tr.train()
    assert len(seen) == 2
    for inputs in seen:
        order = torch.argsort(inputs["_row"])  # back to group-major
        adv = inputs["advantages"][order]
        assert adv.shape == inputs["completion_ids"].shape  # [B, T]: a token advantage
        batch = {k: inputs[k][order] for k in ("completion_ids", "completion_mask")}
        want = fgrpo_reference(tok, batch, [inputs["_grades"][i] for i in order], fn)
        assert torch.equal(adv, want)
    all_adv = torch.cat([s["advantages"].flatten() for s in seen])
    assert all_adv.abs().sum() > 0  # groups with a learning signal: not a test of zeros
    if estimator == "fgrpo":  # some row's slate and rank tokens get different advantages
        assert any(len(set(row[m.bool()].tolist())) > 1 for s in seen for row, m in zip(s["advantages"], s["completion_mask"], strict=True))
    logged = [r for r in tr.state.log_history if "rewards/slate/mean" in r]
    assert len(logged) == 2
    for key in ("rewards/slate/mean", "rewards/slate/std", "rewards/rank/mean", "rewards/rank/std", "reward"):
        assert all(key in r for r in logged), key


def test_config_refuses_what_has_no_fgrpo_meaning(tmp_path) -> None:
    with pytest.raises(ValueError, match="scale_rewards"):
        FGRPOConfig(output_dir=str(tmp_path), use_cpu=True, scale_rewards="batch")
    with pytest.raises(ValueError, match="advantage_estimator"):
        FGRPOConfig(output_dir=str(tmp_path), use_cpu=True, advantage_estimator="ppo")
    cfg = FGRPOConfig(output_dir=str(tmp_path), use_cpu=True, rank_weight=0.5)
    assert cfg.reward_weights == [1.0, 0.5] and cfg.max_slate == 10 and cfg.scale_rewards == "none"


@pytest.mark.slow
def test_a_short_trl_run_learns_both_phases(tmp_path) -> None:
    """F-GRPO through TRL raises both phase rewards on the toy task (5-candidate pools)."""
    tok, model, examples = warm_model(sft_steps=500, pool_size=5)
    tr = trainer(tok, model, examples, tmp_path, prompts_per_step=4, max_steps=80, learning_rate=3e-4)
    tr.train()
    rows = [r for r in tr.state.log_history if "rewards/slate/mean" in r]
    assert len(rows) == 80

    def mean(key: str, part: list) -> float:
        return sum(r[key] for r in part) / len(part)

    first, last = rows[:16], rows[-16:]  # measured here: slate 0.79 -> 0.89, rank 0.54 -> 0.76
    assert mean("rewards/slate/mean", last) > mean("rewards/slate/mean", first) + 0.05
    assert mean("rewards/rank/mean", last) > mean("rewards/rank/mean", first) + 0.1


WORKER = '''
import sys, torch
from datasets import Dataset
from fgrpo.integrations.trl import FGRPOConfig, FGRPOTrainer, trl_rows
from fgrpo.data.toy import make_toy_examples
from fgrpo.models.loading import load_model, load_tokenizer
from fgrpo.trainer.sft import supervised_steps
torch.manual_seed(0)
tok, model = load_tokenizer("builtin:tiny-llama"), load_model("builtin:tiny-llama")
exs = make_toy_examples(64, pool_size=5, max_relevant=2, seed=0)
supervised_steps(model, tok, exs, 100, 16, 1e-3, seed=0, slate_size=3, max_slate=10, max_rank=5)
args = FGRPOConfig(output_dir=sys.argv[1], use_cpu=True, report_to=[], save_strategy="no", max_steps=1,
                   per_device_train_batch_size=4, num_generations=8, generation_batch_size=8, max_completion_length=24,
                   bf16=False, activation_checkpointing=False, disable_tqdm=True, seed=0, beta=0.0, loss_type="dr_grpo")
tr = FGRPOTrainer(model=model, args=args, train_dataset=Dataset.from_dict(trl_rows(tok, exs, 10, 5)), processing_class=tok)
gen, outs = tr._generate_and_score_completions, []
def rec(inputs):
    out = gen(inputs)
    outs.append({"ids": out["completion_ids"], "mask": out["completion_mask"], "adv": out["advantages"],
                 "grades": [x["grades"] for x in inputs]})
    return out
tr._generate_and_score_completions = rec
tr.train()
torch.save(outs[0], f"{sys.argv[1]}/rank{tr.accelerator.process_index}.pt")
# Both processes done, then the gloo group destroyed before the interpreter tears down:
# left to exit-time destructors it can abort ("terminate called without an active exception")
tr.accelerator.wait_for_everyone()
tr.accelerator.end_training()
'''


@pytest.mark.slow
def test_a_group_split_across_two_processes_gets_fgrpos_advantages(tmp_path) -> None:
    """torchrun, 2 CPU processes (gloo), one group of G = 8 split 4 + 4: each process's
    advantages are its rows of fgrpo's estimator on the whole group."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script), str(tmp_path)],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    parts = [torch.load(tmp_path / f"rank{i}.pt") for i in (0, 1)]
    assert parts[0]["grades"][0] == parts[1]["grades"][0] and len(parts[0]["grades"]) == 4  # one group, split
    tok = load_tokenizer("builtin:tiny-llama")
    width = max(p["ids"].shape[1] for p in parts)
    pad = lambda x: torch.nn.functional.pad(x, (0, width - x.shape[1]))  # noqa: E731
    whole = {"completion_ids": torch.cat([pad(p["ids"]) for p in parts]), "completion_mask": torch.cat([pad(p["mask"]) for p in parts])}
    want = fgrpo_reference(tok, whole, parts[0]["grades"] + parts[1]["grades"], fgrpo_token_advantages)
    assert want.abs().sum() > 0
    for i, p in enumerate(parts):
        assert torch.equal(p["adv"], want[4 * i : 4 * (i + 1), : p["ids"].shape[1]])
