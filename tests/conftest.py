"""Shared tokenizer fixtures: the tiny word-level one, and SmolLM2's byte-level BPE when the
converted folder is already in the cache (never converted here: the test is skipped)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_tok():
    from fgrpo.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def bpe_tok():
    from fgrpo.models.smollm2 import CACHE_SUBDIR, SMOLLM2_ID, default_cache_dir, resolve_model_path

    folder = default_cache_dir() / CACHE_SUBDIR
    needed = ("config.json", "tokenizer.json", "tokenizer_config.json", "fgrpo_conversion.json")
    if not all((folder / f).is_file() for f in needed):
        pytest.skip(f"converted SmolLM2 not in {folder}; not converting it in a unit test")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path(SMOLLM2_ID))
