"""Load any causal LM and its tokenizer, optionally with LoRA adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fgrpo.models.smollm2 import resolve_model_path
from fgrpo.models.tiny import TINY_LLAMA_ID, build_tiny_llama, build_tiny_tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    tok = build_tiny_tokenizer() if name == TINY_LLAMA_ID else AutoTokenizer.from_pretrained(resolve_model_path(name))
    if tok.pad_token_id is None:  # batched rollouts need one; EOS never appears mid-completion
        tok.pad_token = tok.eos_token
    return tok


def load_model(name: str, dtype: str = "float32", seed: int = 0, tiny_hidden_size: int = 128, tiny_num_layers: int = 2) -> Any:
    from transformers import AutoModelForCausalLM

    if name == TINY_LLAMA_ID:
        vocab = len(build_tiny_tokenizer())
        return build_tiny_llama(vocab, tiny_hidden_size, tiny_num_layers, seed=seed).to(DTYPES[dtype])
    path = resolve_model_path(name)
    if not Path(path).exists() and "/" not in path:
        raise FileNotFoundError(f"model '{name}': no such folder, and not a hub id")
    return AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype])


def add_lora(model: Any, r: int, alpha: int, dropout: float, target_modules: str) -> Any:
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = target_modules if target_modules == "all-linear" else [
        m.strip() for m in target_modules.split(",") if m.strip()
    ]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, config)
