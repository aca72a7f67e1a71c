"""A run is a function of its config and seed on the machine kind.

What made the main job's RL stage differ between two machines of one kind: PyTorch, MKL and
oneDNN pick their kernels by the CPU's instruction set (AVX-512 or AVX2 on the EPYCs of
this kind), and the two round differently (measured: SmolLM2 logits differ by up to 4.7e-4),
which RL's sampling amplifies. The run scripts pin the kernels to AVX2
(scripts/reproducible_env.sh); these tests check that every run script does, and that this
torch honours the pin."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", ["main.sh", "main_llm.sh", "toy.sh", "build_backbones.sh"])
def test_run_scripts_pin_the_cpu_kernels(script: str) -> None:
    text = (ROOT / "scripts" / script).read_text()
    assert "\nsource scripts/reproducible_env.sh" in text  # a line of its own, before any command runs
    first_run = min(i for i in (text.find("fgrpo "), text.find("$F ")) if i >= 0)  # $F: the fgrpo entry point
    assert text.index("source scripts/reproducible_env.sh") < first_run


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the pin is for x86-64 CPUs")
def test_pinned_environment_selects_avx2_kernels_and_the_same_bits() -> None:
    code = (
        "import torch; torch.manual_seed(0); a = torch.randn(64, 300); b = torch.randn(300, 70);"
        "print(torch.backends.cpu.get_cpu_capability()); print((a @ b).sum().item().hex())"
    )
    run = lambda: subprocess.run(  # noqa: E731
        ["bash", "-c", f"unset FGRPO_NATIVE_ISA ATEN_CPU_CAPABILITY; source scripts/reproducible_env.sh && {sys.executable} -c '{code}'"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    first, second = run(), run()
    assert first[0] == "AVX2" and first == second
