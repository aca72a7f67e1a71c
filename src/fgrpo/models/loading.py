"""Load any causal LM and its tokenizer, optionally with LoRA adapters."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch

from fgrpo.models.smollm2 import resolve_model_path
from fgrpo.models.tiny import TINY_LLAMA_ID, build_tiny_llama, build_tiny_tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # owner/name


def model_path(name: str, key: str = "model") -> str:
    """What ``from_pretrained`` should read for the config value ``name``: a builtin resolved
    to its folder, a local folder, or a hub id; a ConfigError naming ``key`` for a folder
    that does not exist (anything that is not ``owner/name`` is taken for a folder)."""
    from fgrpo.config import ConfigError, short

    path = resolve_model_path(name)
    if Path(path).exists() or _HUB_ID.fullmatch(path):
        return path  # a hub id (online only); from_pretrained's own error is wrapped by the callers
    raise ConfigError(f"key '{key}': {short(path)}: no such model folder")


def from_pretrained(loader: Any, path: str, key: str = "model", **kwargs: Any) -> Any:
    """``loader.from_pretrained(path)``, a ConfigError naming ``key`` if it cannot."""
    from fgrpo.config import ConfigError, short

    try:
        return loader.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        where = "" if Path(path).exists() else ": no such local folder, and not on the hub (or offline)"
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"key '{key}': cannot load {short(path)}{where} ({short(why, 200)})") from None


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    tok = build_tiny_tokenizer() if name == TINY_LLAMA_ID else from_pretrained(AutoTokenizer, model_path(name))
    if tok.pad_token_id is None:  # batched rollouts need one; EOS never appears mid-completion
        tok.pad_token = tok.eos_token
    return tok


def load_model(name: str, dtype: str = "float32", seed: int = 0, tiny_hidden_size: int = 128, tiny_num_layers: int = 2) -> Any:
    from transformers import AutoModelForCausalLM

    if name == TINY_LLAMA_ID:
        vocab = len(build_tiny_tokenizer())
        return build_tiny_llama(vocab, tiny_hidden_size, tiny_num_layers, seed=seed).to(DTYPES[dtype])
    return from_pretrained(AutoModelForCausalLM, model_path(name), dtype=DTYPES[dtype])


def load_model_config(name: str) -> Any:
    """The model's Hugging Face config without its weights (builtin tiny: built, it is small)."""
    from transformers import AutoConfig

    if name == TINY_LLAMA_ID:
        return load_model(name).config
    return from_pretrained(AutoConfig, model_path(name))


def enable_checkpointing(model: Any) -> None:
    """Turn on activation (gradient) checkpointing under the name this transformers has:
    ``activation_checkpointing_enable`` since the rename; the old name now warns on every run."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()


def add_lora(model: Any, r: int, alpha: int, dropout: float, target_modules: str) -> Any:
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = target_modules if target_modules == "all-linear" else [
        m.strip() for m in target_modules.split(",") if m.strip()
    ]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM")
    with warnings.catch_warnings():
        # peft reads the old name model.is_gradient_checkpointing, which transformers now
        # warns about on every LoRA run; nothing for us to change, so only that one is hushed
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return get_peft_model(model, config)


def load_trained(name: str, dtype: str = "float32") -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) of a trained model folder (or a builtin resolved to
    its folder, or a hub id): what evaluation and :class:`fgrpo.ranker.Ranker` decode with."""
    from transformers import AutoModelForCausalLM

    path = model_path(name)
    model = from_pretrained(AutoModelForCausalLM, path, dtype=DTYPES[dtype])
    return model.eval(), load_tokenizer(path)
