"""Model names and where their weights come from (the embedded SmolLM2 default LLM)."""

from fgrpo.models.smollm2 import (
    SMOLLM2_ID,
    default_cache_dir,
    ensure_smollm2,
    resolve_model_path,
    smollm2_gguf_path,
)

__all__ = [
    "SMOLLM2_ID",
    "default_cache_dir",
    "ensure_smollm2",
    "resolve_model_path",
    "smollm2_gguf_path",
]
