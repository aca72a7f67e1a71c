"""Architectures of the GPU models, for building them without weights (``--dry-run``).

Hub downloads are impossible on the machines this project runs on, so the architecture
numbers of the models the GPU configs name are kept here, copied from the ``config.json``
each model publishes on the Hugging Face hub (the fields that decide shapes and parameter
count; rope and context-length fields are included because a config without them would
describe a different model, not because the estimate uses them). A model built from one
of these on the meta device has exactly the published parameter count (checked in
tests/test_scale_out.py against the numbers on the model cards).

Sources (public config.json / model card of each repository):
- Qwen/Qwen3-4B-Instruct-2507: 4.0B parameters, 36 layers, 32 query / 8 key-value heads.
- Qwen/Qwen3-1.7B: 1.7B parameters, 28 layers, 16 query / 8 key-value heads.
- HuggingFaceTB/SmolLM2-135M-Instruct: 134.5M parameters (the embedded CPU model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ARCHITECTURES: dict[str, dict[str, Any]] = {
    "Qwen/Qwen3-4B-Instruct-2507": {
        "model_type": "qwen3",
        "architectures": ["Qwen3ForCausalLM"],
        "vocab_size": 151936,
        "hidden_size": 2560,
        "intermediate_size": 9728,
        "num_hidden_layers": 36,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "attention_bias": False,
        "rms_norm_eps": 1e-6,
        "rope_theta": 5000000,
        "max_position_embeddings": 262144,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
    },
    "Qwen/Qwen3-1.7B": {
        "model_type": "qwen3",
        "architectures": ["Qwen3ForCausalLM"],
        "vocab_size": 151936,
        "hidden_size": 2048,
        "intermediate_size": 6144,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "attention_bias": False,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000,
        "max_position_embeddings": 40960,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
    },
    "HuggingFaceTB/SmolLM2-135M-Instruct": {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": 49152,
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "rms_norm_eps": 1e-5,
        "rope_theta": 100000,
        "max_position_embeddings": 8192,
    },
}

# names under which the models are also known in this project
ALIASES = {
    "builtin:smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct",
}


def architecture_config(name: str, tiny_hidden_size: int = 128, tiny_num_layers: int = 2) -> tuple[Any, str]:
    """(transformers config, where it came from) for a model name, without loading weights.

    Order: the built-in tiny Llama; a local folder's ``config.json``; a converted SmolLM2
    folder already in the cache; a preset above. Raises ``LookupError`` naming what was tried.
    """
    from transformers import AutoConfig

    from fgrpo.models.tiny import TINY_LLAMA_ID, build_tiny_tokenizer

    if name == TINY_LLAMA_ID:
        from transformers import LlamaConfig

        # the same numbers build_tiny_llama uses (4 heads, MLP twice the width)
        config = LlamaConfig(
            vocab_size=len(build_tiny_tokenizer()), hidden_size=tiny_hidden_size, intermediate_size=tiny_hidden_size * 2,
            num_hidden_layers=tiny_num_layers, num_attention_heads=4, num_key_value_heads=4,
            max_position_embeddings=512, tie_word_embeddings=True,
        )
        return config, "builtin tiny Llama"
    folder = Path(name)
    if (folder / "config.json").is_file():
        return AutoConfig.from_pretrained(folder), f"{folder / 'config.json'}"
    key = ALIASES.get(name, name)
    if key != name:  # the converted builtin, if already in the cache, is what a run would load
        from fgrpo.models.smollm2 import CACHE_SUBDIR, _is_complete, default_cache_dir

        local = default_cache_dir() / CACHE_SUBDIR  # looked up only: a dry run never converts
        if _is_complete(local):
            return AutoConfig.from_pretrained(local), f"{local / 'config.json'}"
    if key in ARCHITECTURES:
        values = dict(ARCHITECTURES[key])
        model_type = values.pop("model_type")
        values.pop("architectures", None)
        return AutoConfig.for_model(model_type, **values), f"preset {key} (fgrpo/models/presets.py)"
    raise LookupError(
        f"model '{name}': no config.json in a local folder and no preset; presets: {', '.join(sorted(ARCHITECTURES))}"
    )


def build_empty_model(config: Any) -> Any:
    """The causal LM of ``config`` on the meta device: shapes and parameter count, no memory.

    ``torch.device("meta")`` rather than accelerate's ``init_empty_weights``: with the
    latter transformers 5 leaves tied embeddings untied (the count would include the LM
    head twice).
    """
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    model.tie_weights()
    return model

