"""Helpers of the FSDP / DeepSpeed path that run without launching processes."""

import json
import math
from pathlib import Path

import pytest
import torch

from fgrpo.trainer.sharded import clip_grad_norm, tied_names


class _Acc:
    """Stands in for accelerate.Accelerator: clip_grad_norm_ answers what an engine would."""

    def __init__(self, answer: object) -> None:
        self.answer = answer

    def clip_grad_norm_(self, parameters: object, max_norm: float) -> object:
        list(parameters)
        return self.answer


class _Whole:
    """A DTensor-like norm (FSDP2): only full_tensor() gives the global value."""

    def full_tensor(self) -> torch.Tensor:
        return torch.tensor(2.5)


def test_clip_grad_norm_reads_every_engine_answer() -> None:
    model = torch.nn.Linear(2, 2)
    assert float(clip_grad_norm(_Acc(torch.tensor(1.5)), model, 1.0)) == 1.5  # plain tensor
    assert float(clip_grad_norm(_Acc(0.75), model, 1.0)) == 0.75  # DeepSpeed's float
    assert float(clip_grad_norm(_Acc(_Whole()), model, 1.0)) == 2.5  # FSDP2's DTensor
    assert math.isnan(float(clip_grad_norm(_Acc(None), model, 1.0)))  # not reported


def test_tied_names_lists_the_second_name_of_a_shared_weight() -> None:
    emb = torch.nn.Embedding(5, 3)
    head = torch.nn.Linear(3, 5, bias=False)
    head.weight = emb.weight
    model = torch.nn.Sequential(emb, head)
    assert tied_names(model) == ["1.weight"]
    assert tied_names(torch.nn.Sequential(torch.nn.Linear(2, 2))) == []


@pytest.mark.parametrize("launch,needle", [("fsdp", "resume it with the same launch"), ("deepspeed", "saves no optimizer state")])
def test_data_parallel_resume_refuses_an_engine_checkpoint(tmp_path: Path, launch: str, needle: str) -> None:
    from fgrpo.commands.train import setup, train
    from fgrpo.config import load_config
    from fgrpo.config.commands import TrainConfig
    from fgrpo.trainer.checkpoint import STATE_FILE, latest_checkpoint
    from fgrpo.trainer.launch import LaunchError

    cfg = load_config(TrainConfig, Path(__file__).parents[1] / "configs" / "toy.yaml", [
        f"output_dir={tmp_path}", "sft_warmup_steps=0", "max_steps=1", "group_size=2", "prompts_per_step=1",
        "eval_every=0", "tensorboard=false", "torch_threads=1", "save_every=1",
    ])  # fmt: skip
    train(cfg)
    ckpt = latest_checkpoint(tmp_path)
    state = json.loads((ckpt / STATE_FILE).read_text())
    assert state["launch"] == "single"
    (ckpt / STATE_FILE).write_text(json.dumps({**state, "launch": launch}))
    if launch == "deepspeed":  # what sharded.full_state_dicts writes under DeepSpeed
        torch.save({}, ckpt / "optimizer.pt")
    with pytest.raises(LaunchError, match=needle):
        setup(cfg, resume=True)


def test_update_is_finite_by_hand() -> None:
    from fgrpo.trainer.train import update_is_finite

    nan, inf = math.nan, math.inf
    assert update_is_finite(0.5, 1.0, "single") and update_is_finite(0.5, 1.0, "fsdp")
    assert not update_is_finite(0.5, nan, "single") and not update_is_finite(0.5, inf, "fsdp")
    assert not update_is_finite(nan, 1.0, "single") and not update_is_finite(inf, 1.0, "deepspeed")
    assert update_is_finite(0.5, nan, "deepspeed")  # the engine stepped; it just did not report the norm
