"""GPU configurations checked as far as a CPU allows (docs/scale-out.md).

- the accelerate config files parse with accelerate's own loader and pass its launcher's
  validation; the environment that launcher would give the trainer is accepted (DDP, FSDP,
  ZeRO-2; Megatron and sharded LoRA refused at start-up);
- the GPU train configs load; the model presets build on the meta device with the
  published parameter counts; the memory estimator matches hand-worked numbers; the dry
  run builds what it can and trains nothing;
- bf16 autocast keeps float32 weights; gradient checkpointing works with the shared
  prompt prefix (same log-probs and gradients as the plain forward);
- ``accelerate launch --multi_gpu --num_processes 2`` on CPU (gloo) reaches the
  one-process parameters and writes metrics and checkpoints once (slow); so does
  ``accelerate launch --config_file configs/accelerate/fsdp.yaml`` (FSDP2, slow).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fgrpo.config import ConfigError, load_config
from fgrpo.config.commands import TrainConfig
from fgrpo.trainer import memory
from fgrpo.trainer.launch import (
    LaunchError,
    check_launch,
    enable_autocast,
    launch_strategy,
    precision_warnings,
)

REPO = Path(__file__).resolve().parents[1]
ACC = REPO / "configs" / "accelerate"
GPU = REPO / "configs" / "gpu"
EXPECTED_TYPE = {"ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed_zero2": "DEEPSPEED"}


# ------------------------------------------------------------ accelerate config files


def _launcher_env(name: str) -> dict[str, str]:
    """The environment ``accelerate launch --config_file configs/accelerate/NAME.yaml`` would
    give each process, built by accelerate's own launcher code (nothing started)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(ACC / f"{name}.yaml"), "-m", "fgrpo", "train"])
    args, defaults, _ = _validate_launch_command(args)
    if args.use_deepspeed:
        # set by accelerate's launch_command before it calls the DeepSpeed launcher
        args.deepspeed_fields_from_accelerate_config = ",".join([*defaults.deepspeed_config, "mixed_precision"])
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    base = dict(os.environ)
    return {k: v for k, v in env.items() if k not in base or base[k] != v}


@pytest.mark.parametrize("name", sorted(EXPECTED_TYPE))
def test_accelerate_config_parses_with_accelerates_loader(name: str) -> None:
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    cfg = load_config_from_file(str(ACC / f"{name}.yaml"))
    assert isinstance(cfg, ClusterConfig)
    assert cfg.distributed_type.value == EXPECTED_TYPE[name]
    assert (cfg.mixed_precision, cfg.num_processes, cfg.num_machines, cfg.use_cpu) == ("bf16", 8, 1, False)
    if name == "fsdp":
        assert cfg.fsdp_config["fsdp_version"] == 2 and cfg.fsdp_config["fsdp_reshard_after_forward"] is True
        assert "fsdp_transformer_layer_cls_to_wrap" not in cfg.fsdp_config  # the model's _no_split_modules
        assert cfg.fsdp_config["fsdp_cpu_ram_efficient_loading"] is False
    if name == "deepspeed_zero2":
        ds = cfg.deepspeed_config
        assert ds["zero_stage"] == 2 and ds["offload_optimizer_device"] == ds["offload_param_device"] == "none"
        assert ds["gradient_clipping"] == 1.0 and ds["gradient_accumulation_steps"] == 1


def test_trainer_accepts_ddp_fsdp_and_zero2_launches() -> None:
    cfg = load_config(TrainConfig, GPU / "fgrpo_qwen3_4b.yaml")
    ddp = _launcher_env("ddp")
    assert ddp["ACCELERATE_MIXED_PRECISION"] == "bf16"
    assert check_launch(cfg, {**ddp, "WORLD_SIZE": "8"}) == "ddp"  # torchrun adds WORLD_SIZE per process
    with pytest.raises(LaunchError, match="mixed_precision"):  # toy config: no bf16
        check_launch(TrainConfig(), {**ddp, "WORLD_SIZE": "8"})
    fsdp = _launcher_env("fsdp")
    assert fsdp["ACCELERATE_USE_FSDP"] == "true" and fsdp["FSDP_RESHARD_AFTER_FORWARD"] == "true"
    assert check_launch(cfg, {**fsdp, "WORLD_SIZE": "8"}) == "fsdp"
    zero2 = _launcher_env("deepspeed_zero2")
    assert zero2["ACCELERATE_USE_DEEPSPEED"] == "true" and zero2["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "2"
    assert check_launch(cfg, {**zero2, "WORLD_SIZE": "8"}) == "deepspeed"
    lora = load_config(TrainConfig, GPU / "fgrpo_qwen3_4b.yaml", ["use_lora=true"])
    for env in (fsdp, zero2):
        with pytest.raises(LaunchError, match="use_lora=true"):
            check_launch(lora, {**env, "WORLD_SIZE": "8"})
    with pytest.raises(LaunchError, match="ZeRO stages 1 and 2"):
        check_launch(cfg, {**zero2, "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3", "WORLD_SIZE": "8"})


def test_launch_checks() -> None:
    cfg = TrainConfig()
    assert launch_strategy({}) == "single" and check_launch(cfg, {}) == "single"
    assert check_launch(cfg, {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1"}) == "ddp"  # torchrun
    # accelerate launch --cpu --num_processes 2: one process only, which must not pass for two
    with pytest.raises(LaunchError, match="starts one process"):
        check_launch(cfg, {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"})
    assert check_launch(cfg, {"ACCELERATE_USE_CPU": "True", "ACCELERATE_MIXED_PRECISION": "no"}) == "single"
    with pytest.raises(LaunchError, match="Megatron"):
        check_launch(cfg, {"ACCELERATE_USE_MEGATRON_LM": "true"})


def test_setup_refuses_before_building_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fgrpo.commands.train import setup

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(LaunchError, match="use_lora=true"):
        setup(TrainConfig(output_dir=str(tmp_path / "run"), use_lora=True))
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # accelerate enables DeepSpeed on GPUs only
    with pytest.raises(LaunchError, match="without CUDA"):
        setup(TrainConfig(output_dir=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------ train configs, presets, estimator


@pytest.mark.parametrize("name", ["fgrpo_qwen3_4b.yaml", "fgrpo_qwen2b.yaml"])
def test_gpu_train_configs_load(name: str) -> None:
    from fgrpo.models.presets import ARCHITECTURES

    cfg = load_config(TrainConfig, GPU / name)
    assert cfg.group_size == 8 and cfg.gradient_checkpointing and cfg.share_prompt_prefix
    assert (cfg.dtype, cfg.mixed_precision, cfg.use_lora) == ("float32", "bf16", False)
    assert (cfg.max_slate, cfg.max_rank, cfg.kl_beta, cfg.loss_aggregation) == (10, 5, 0.0, "dr_grpo")
    assert cfg.model in ARCHITECTURES
    assert precision_warnings(cfg) == []


def test_presets_build_without_weights_with_published_parameter_counts() -> None:
    from fgrpo.models.presets import architecture_config, build_empty_model
    from fgrpo.models.tiny import TINY_LLAMA_ID, build_tiny_llama, build_tiny_tokenizer

    published = {"Qwen/Qwen3-4B-Instruct-2507": 4.0e9, "Qwen/Qwen3-1.7B": 1.7e9}  # model cards, tied embeddings
    counts = {}
    for name, approx in published.items():
        config, where = architecture_config(name)
        model = build_empty_model(config)
        assert "preset" in where and type(model).__name__ == "Qwen3ForCausalLM"
        assert all(p.is_meta for p in model.parameters())
        counts[name] = sum(p.numel() for p in model.parameters())
        assert abs(counts[name] - approx) / approx < 0.02, (name, counts[name])
    # exact values: embedding 151936 x h, plus per layer q/k/v/o, SwiGLU MLP, 2 norms + q/k norms
    per_layer_4b = 2560 * 4096 * 2 + 2560 * 1024 * 2 + 3 * 2560 * 9728 + 2 * 2560 + 2 * 128
    assert counts["Qwen/Qwen3-4B-Instruct-2507"] == 151936 * 2560 + 36 * per_layer_4b + 2560
    assert counts["Qwen/Qwen3-1.7B"] == 1_720_574_976
    config, _ = architecture_config(TINY_LLAMA_ID, 128, 2)
    real = build_tiny_llama(len(build_tiny_tokenizer()), 128, 2)
    assert sum(p.numel() for p in build_empty_model(config).parameters()) == sum(p.numel() for p in real.parameters())


def _shape(**kw: int) -> memory.ModelShape:
    base = dict(total_params=1_000_000_000, trainable_params=1_000_000_000, num_layers=2, hidden_size=4, q_dim=4,
                kv_dim=2, intermediate_size=8, vocab_size=10, largest_unit_params=100, largest_tensor_params=50)
    return memory.ModelShape(**{**base, **kw})


def test_memory_estimate_hand_worked() -> None:
    shape = _shape()
    mixed = memory.precision_of("float32", "bf16", use_lora=False)
    assert mixed == memory.Precision(param_bytes=4, trainable_bytes=4, compute_bytes=2, mixed=True)
    p = 1_000_000_000
    # DDP: fp32 weights 4P + bf16 autocast copies 2P; fp32 grads 4P + one 50-param reduce buffer; AdamW 8P
    assert memory.model_state_bytes(shape, mixed, "ddp", 8) == (6 * p, 4 * p + 200, 8 * p)
    # FSDP full shard over 8: 4P/8 + two gathered 100-param units in bf16; grads 4P/8 + one unit in fp32; AdamW 8P/8
    assert memory.model_state_bytes(shape, mixed, "fsdp", 8) == (p // 2 + 400, p // 2 + 400, p)
    # ZeRO-2 (ZeRO paper, K = 12): bf16 module 2P; bf16 grads 2P/8; fp32 master + moments 12P/8
    assert memory.model_state_bytes(shape, mixed, "deepspeed", 8) == (2 * p, p // 4, 3 * p // 2)
    # LoRA: frozen bf16 base, fp32 adapters of 1000 params; DDP without autocast
    lora = memory.precision_of("bfloat16", "no", use_lora=True)
    assert memory.model_state_bytes(_shape(trainable_params=1000), lora, "ddp", 1) == (2 * (p - 1000) + 4000, 4000 + 200, 8000)

    # activations: per token and layer 4h + 5q + 4kv + 4I = 16 + 20 + 8 + 32 = 76 elements
    assert memory.layer_activation_elements(shape) == 76
    work = memory.Workload(group_size=2, prompts_per_step=3, prompt_tokens=5, completion_tokens=3,
                           share_prompt_prefix=True, gradient_checkpointing=True)
    assert memory.training_tokens(work) == 5 + 2 * 3
    assert memory.activation_bytes(shape, work, 2) == 11 * (2 * 4 + 76) * 2  # layer inputs + one layer recomputed
    no_ckpt = memory.Workload(2, 3, 5, 3, share_prompt_prefix=False, gradient_checkpointing=False)
    assert memory.activation_bytes(shape, no_ckpt, 2) == 2 * (5 + 3) * 2 * 76 * 2
    # logits: G*T*V in bf16 + fp32 upcast, log-softmax, its gradient
    assert memory.logits_bytes(shape, work, 2) == 2 * 3 * 10 * (2 + 12)
    assert memory.logits_bytes(shape, work, 4) == 2 * 3 * 10 * (4 + 8)
    # rollout KV: ceil(3/2) = 2 groups x G rows x (Lp + T) x (K and V) x kv x layers x bytes
    assert memory.rollout_kv_bytes(shape, work, 2, num_gpus=2) == 2 * 2 * 8 * 2 * 2 * 2 * 2
    est = memory.estimate(shape, work, mixed, "ddp", 2)
    assert est.peak == est.weights + est.optimizer + max(est.gradients + est.activations + est.logits, est.rollout_kv)
    assert memory.lora_params([(4, 4), (4, 2)], rank=2) == 2 * 8 + 2 * 6


def test_dry_run_gpu_config_builds_model_and_estimates(tmp_path: Path) -> None:
    from fgrpo.commands.dry_run import dry_run

    lines: list[str] = []
    cfg = load_config(TrainConfig, GPU / "fgrpo_qwen3_4b.yaml", [f"output_dir={tmp_path / 'out'}"])
    report = dry_run(cfg, ACC / "fsdp.yaml", echo=lines.append)
    text = "\n".join(lines)
    assert report["plan"].strategy == "fsdp" and report["plan"].num_gpus == 8
    assert report["shape"].total_params == 4_022_468_096 and report["shape"].num_layers == 36
    table = report["table"]
    assert table["fsdp"].peak < table["deepspeed"].peak < table["ddp"].peak
    assert 40 * memory.GIB < table["ddp"].peak < 80 * memory.GIB  # full fine-tuning of 4B fits an 80 GB GPU, barely
    assert "runs (accelerate FSDP2" in text and "nothing was trained" in text
    assert table["fsdp"].rollout_weights == 4_022_468_096 * 2 and table["ddp"].rollout_weights == 0  # bf16 copy
    assert report["prompt_tokens"] == 1024 and "assumed" in text  # no Qwen tokenizer offline
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    lora = load_config(TrainConfig, GPU / "fgrpo_qwen3_4b.yaml", ["use_lora=true", "lora_r=16"])
    small = dry_run(lora, num_gpus=1, strategy="ddp", prompt_tokens=512, echo=lambda s: None)
    alias = dry_run(lora, num_gpus=2, strategy="zero2", prompt_tokens=512, echo=lambda s: None)  # the old name
    assert alias["plan"].strategy == "deepspeed" and alias["estimate"] == alias["table"]["deepspeed"]
    # all-linear on 36 layers: r * (in + out) of q, k, v, o, gate, up, down
    per_layer = 16 * ((2560 + 4096) * 2 + (2560 + 1024) * 2 + (2560 + 9728) * 3)
    assert small["shape"].trainable_params == 36 * per_layer


def test_dry_run_rejects_precision_contradiction() -> None:
    from fgrpo.commands.dry_run import dry_run

    with pytest.raises(ConfigError, match="mixed_precision"):
        dry_run(TrainConfig(), ACC / "ddp.yaml", echo=lambda s: None)  # toy config has no bf16


def test_dry_run_command_exits_0_and_trains_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "fgrpo", "train", "--config", "configs/gpu/fgrpo_qwen2b.yaml", f"output_dir={out}",
         "--dry-run", "--accelerate-config", "configs/accelerate/deepspeed_zero2.yaml", "--prompt-tokens", "600"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "deepspeed on 8 GPU(s)" in proc.stdout and "1,720,574,976 parameters" in proc.stdout
    assert "| deepspeed |" in proc.stdout and "nothing was trained" in proc.stdout
    assert not out.exists()


# ------------------------------------------------------------ numerics on CPU


def test_bf16_autocast_keeps_float32_weights_and_grads() -> None:
    import copy

    from fgrpo.models.tiny import build_tiny_llama, build_tiny_tokenizer

    model = build_tiny_llama(len(build_tiny_tokenizer()), 64, 2)
    ids = torch.tensor([[5, 6, 7, 8]])
    ref = model(input_ids=ids).logits
    enable_autocast(model, torch.bfloat16, "cpu")
    out = model(input_ids=ids).logits
    assert out.dtype == torch.bfloat16 and torch.allclose(out.float(), ref, atol=0.05)
    out.float().sum().backward()
    assert {p.dtype for p in model.parameters()} == {p.grad.dtype for p in model.parameters()} == {torch.float32}
    copied = copy.deepcopy(model)  # the KL reference: its own weights, still under autocast
    with torch.no_grad():
        for p in copied.parameters():
            p.zero_()
    assert copied(input_ids=ids).logits.abs().max() == 0 and model(input_ids=ids).logits.abs().max() > 0
    with pytest.raises(IndexError):
        model(input_ids=torch.tensor([[10**6]]))
    assert not torch.is_autocast_enabled("cpu")  # left even when the forward raised
    from fgrpo.models.loading import add_lora

    lora = add_lora(copied, 4, 8, 0.0, "all-linear")  # setup() wraps after enable_autocast: still bf16
    assert lora(input_ids=ids).logits.dtype == torch.bfloat16
    assert {p.dtype for p in lora.parameters() if p.requires_grad} == {torch.float32}


def test_precision_warnings() -> None:
    assert precision_warnings(TrainConfig()) == []
    assert "rounds away" in precision_warnings(TrainConfig(dtype="bfloat16"))[0]
    assert precision_warnings(TrainConfig(dtype="bfloat16", use_lora=True)) == []


def test_gradient_checkpointing_with_shared_prefix_matches_plain_forward() -> None:
    from fgrpo.models.tiny import build_tiny_llama, build_tiny_tokenizer
    from fgrpo.trainer.forward import completion_logprobs

    torch.manual_seed(0)
    model = build_tiny_llama(len(build_tiny_tokenizer()), 32, 3)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # larger weights: every output depends on the whole prefix
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    prompt, comps = list(range(5, 25)), [[30, 31, 32, 1], [33, 34, 1], [40]]
    params = list(model.parameters())

    def run(share: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        logp, mask = completion_logprobs(model, prompt, comps, 0, 0.7, share)
        weights = torch.linspace(-1, 1, logp.numel()).view_as(logp)
        return logp.detach(), list(torch.autograd.grad((logp * mask * weights).sum(), params))

    model.train()
    plain = run(False)
    model.gradient_checkpointing_enable()
    model.train()
    replays = {"n": 0}
    for layer in model.model.layers:
        inner = layer._gradient_checkpointing_func

        def counted(*args: object, _inner: object = inner, **kwargs: object) -> object:
            replays["n"] += 1
            return _inner(*args, **kwargs)  # type: ignore[operator]

        layer._gradient_checkpointing_func = counted
    shared = run(True)
    assert replays["n"] == 2 * 3  # prompt pass and completion pass, 3 layers each: checkpointed
    assert torch.allclose(shared[0], plain[0], atol=1e-5)
    for a, b in zip(shared[1], plain[1], strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert not any("_can_checkpoint_with_cache" in m.__dict__ for m in model.modules())  # flag removed again


def test_one_training_step_with_bf16_autocast_and_checkpointing(tmp_path: Path) -> None:
    from fgrpo.commands.train import train
    from fgrpo.trainer.metrics_log import read_metrics

    cfg = load_config(TrainConfig, REPO / "configs" / "toy.yaml", [
        f"output_dir={tmp_path}", "sft_warmup_steps=0", "max_steps=1", "group_size=2", "prompts_per_step=1",
        "eval_every=0", "tensorboard=false", "mixed_precision=bf16", "gradient_checkpointing=true", "torch_threads=1",
    ])
    train(cfg)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert len(rows) == 1 and rows[0]["loss"] is not None and not rows[0]["update_skipped"]
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(tmp_path / "model" / "model.safetensors").values()} == {torch.float32}
    assert "launch: single" in (tmp_path / "metrics.jsonl").read_text()


# ------------------------------------------------------------ accelerate launch on CPU


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes_match_one_process(tmp_path: Path) -> None:
    """The shipped ddp.yaml, on CPU: --num_processes 2 --mixed_precision no override the
    8 GPUs and bf16 (accelerate's flags win over its config file); gloo underneath."""
    from safetensors.torch import load_file

    common = ["--config", "configs/toy.yaml", "sft_warmup_steps=300", "tensorboard=false", "group_size=4",
              "prompts_per_step=2", "max_steps=2", "save_every=2", "eval_every=0", "torch_threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    for cmd in (
        [sys.executable, "-m", "fgrpo", "train", *common, f"output_dir={one}"],
        [str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file", str(ACC / "ddp.yaml"),
         "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", "29517",
         "-m", "fgrpo", "train", *common, f"output_dir={two}"],
    ):
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
        assert proc.returncode == 0, proc.stderr[-4000:]
    a, b = load_file(one / "model" / "model.safetensors"), load_file(two / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    text = (two / "metrics.jsonl").read_text()
    assert "launch: ddp, 2 process(es)" in text
    lines = text.splitlines()
    assert sum('"reward/slate"' in line for line in lines) == 2  # written by rank 0 only
    assert any('"grad_norm": 0.0' not in line for line in lines if '"reward/slate"' in line)  # a real update
    assert [p.name for p in (two / "checkpoints").glob("step-*")] == ["step-000002"]
    assert {p.name for p in (two / "checkpoints" / "step-000002").glob("rng-*.pt")} == {"rng-0.pt", "rng-1.pt"}


@pytest.mark.slow
def test_accelerate_launch_fsdp_two_cpu_processes_match_one_process(tmp_path: Path) -> None:
    """The shipped fsdp.yaml (FSDP2, full shard) on CPU with gloo: 2 processes, each holding
    half of every parameter, gradient and AdamW state, reach the one-process parameters.
    Both runs use the plain forward (the one the trainer uses under FSDP, sharded.py), so
    the two differ only in how the gradients are summed."""
    from safetensors.torch import load_file

    common = ["--config", "configs/toy.yaml", "sft_warmup_steps=300", "tensorboard=false", "group_size=4",
              "prompts_per_step=2", "max_steps=2", "save_every=1", "eval_every=0", "torch_threads=1",
              "share_prompt_prefix=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    fsdp = [str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file", str(ACC / "fsdp.yaml"),
            "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", "29518", "-m", "fgrpo", "train"]
    one, two, resumed = tmp_path / "one", tmp_path / "two", tmp_path / "resumed"

    def run(cmd: list[str]) -> None:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
        assert proc.returncode == 0, proc.stderr[-4000:]

    run([sys.executable, "-m", "fgrpo", "train", *common, f"output_dir={one}"])
    run([*fsdp, *common, f"output_dir={two}"])
    a, b = load_file(one / "model" / "model.safetensors"), load_file(two / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    text = (two / "metrics.jsonl").read_text()
    assert "launch: fsdp, 2 process(es)" in text
    rows = [line for line in text.splitlines() if '"reward/slate"' in line]
    assert len(rows) == 2 and any('"grad_norm": 0.0' not in line for line in rows)  # a real update, logged once
    ckpt = two / "checkpoints" / "step-000002"
    assert {p.name for p in ckpt.glob("rng-*.pt")} == {"rng-0.pt", "rng-1.pt"}
    saved = load_file(ckpt / "model" / "model.safetensors")  # full weights, not one process's shard
    assert all(saved[k].shape == b[k].shape and torch.equal(saved[k], b[k]) for k in b)
    optim = torch.load(ckpt / "optimizer.pt", weights_only=False)  # full AdamW state, keyed by parameter name
    assert set(optim["state"]) == set(b) - {"lm_head.weight"}  # the head is tied to the embedding: one state
    assert all(st["exp_avg"].shape == b[name].shape for name, st in optim["state"].items())

    # resume: from the step-1 checkpoint, step 2 again gives the uninterrupted run's weights
    shutil.copytree(two, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step-000002")
    shutil.rmtree(resumed / "model")
    run([*fsdp, *common, f"output_dir={resumed}", "--resume"])
    c = load_file(resumed / "model" / "model.safetensors")
    for k in b:
        assert torch.allclose(b[k], c[k], atol=1e-6, rtol=1e-5), k
    assert "resumed from" in (resumed / "metrics.jsonl").read_text()
