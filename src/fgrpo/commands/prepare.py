"""``fgrpo prepare``: raw dataset files -> ``train/valid/test.jsonl`` + ``manifest.json``.

One config (:class:`~fgrpo.config.commands.PrepareConfig`) names the dataset, where its raw
files are and the protocol knobs. The command checks it, builds the splits
(:func:`fgrpo.data.build.build_dataset`), sets up the output folder
(:func:`~fgrpo.commands.setup.setup_run`; no ``config.yaml``: the manifest carries the full
config) and writes the splits in the task-neutral schema of :mod:`fgrpo.data.schema` plus the
manifest (:func:`fgrpo.data.build.make_manifest`).

Relative paths (``input_path``, ``output_dir``) are relative to the working directory;
the shipped configs assume the repository root, with the shared data folder next to it.

Run: ``fgrpo prepare --config configs/prepare_musique.yaml output_dir=/tmp/x`` or
``python -m fgrpo.commands.prepare configs/prepare_musique.yaml output_dir=/tmp/x``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from fgrpo.commands.setup import setup_run
from fgrpo.config import load_config
from fgrpo.config.commands import PrepareConfig
from fgrpo.data.build import build_dataset, make_manifest
from fgrpo.data.common import SPLITS
from fgrpo.data.schema import Example, write_jsonl

MANIFEST = "manifest.json"
# the answer format the manifest's prompt lengths are counted under: the paper's limits
PROMPT_MAX_SLATE, PROMPT_MAX_RANK = 10, 5


def prompt_length_fn(tokenizer_name: str | None) -> Callable[[Example], int] | None:
    """Token count of an example's rendered prompt under ``tokenizer_name`` (a model folder or
    builtin name); None without one."""
    if not tokenizer_name:
        return None
    from fgrpo.format.prompts import encode_prompt
    from fgrpo.models.loading import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_name)
    return lambda ex: len(encode_prompt(tokenizer, ex, PROMPT_MAX_SLATE, PROMPT_MAX_RANK))


def run_prepare(
    cfg: PrepareConfig,
    prompt_length_fn: Callable[[Example], int] | None = None,
    hf_data: Any = None,
) -> dict[str, Any]:
    """Build the dataset named by ``cfg`` and write it to ``cfg.output_dir``; return the manifest.

    ``prompt_length_fn`` (e.g. the token count of the rendered prompt), when given, adds
    ``prompt_lengths``: min / median / p95 / max per split to the manifest. ``hf_data``: with
    ``dataset=hf_dataset``, a ``datasets.Dataset`` or ``DatasetDict`` given in Python.
    """
    cfg.validate()
    stats: dict[str, int] = {}
    built = build_dataset(cfg, stats, hf_data)
    out = setup_run(cfg, save=False)
    for split in SPLITS:
        write_jsonl(built.splits[split], out / f"{split}.jsonl")
    manifest = make_manifest(cfg, built, stats, prompt_length_fn)
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (out / MANIFEST).write_text(text, encoding="utf-8")
    return manifest


def run(cfg: PrepareConfig) -> dict[str, Any]:
    """The command: :func:`run_prepare`, with prompt lengths when ``prompt_tokenizer`` is set."""
    return run_prepare(cfg, prompt_length_fn(cfg.prompt_tokenizer))


def main(argv: list[str] | None = None) -> int:
    """``python -m fgrpo.commands.prepare CONFIG.yaml [key=value ...]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    path = args.pop(0) if args and "=" not in args[0] else None
    cfg = load_config(PrepareConfig, path, args)
    manifest = run(cfg)
    print(json.dumps({k: manifest[k] for k in ("counts", "skipped")}, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
