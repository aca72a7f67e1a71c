"""The set-up every command shares: seed, CPU threads, output folder, saved config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fgrpo.config import save_config


def setup_run(cfg: Any, *, save: bool = True, seed: bool = True) -> Path:
    """Seed torch from ``cfg.seed``, set ``cfg.torch_threads`` (0: torch's default), create
    ``cfg.output_dir`` and write ``config.yaml`` there (the exact options of the run).
    Returns the output folder. Fields a config lacks are skipped (prepare has no threads);
    ``seed=False`` leaves torch's generator alone (eval: its methods seed themselves)."""
    import torch

    if seed and hasattr(cfg, "seed"):
        torch.manual_seed(cfg.seed)
    threads = getattr(cfg, "torch_threads", 0)
    if threads and threads > 0:
        torch.set_num_threads(threads)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if save:
        save_config(cfg, out / "config.yaml")
    return out
