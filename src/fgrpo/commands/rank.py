"""``fgrpo rank``: a slate and a ranking for every example read, with a trained model.

read (JSONL of examples, relevance labels not needed) -> load (the model folder, parsed with
the answer format its ``fgrpo.json`` records) -> decode -> write (one JSON line per example).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable
from typing import IO, Any

from fgrpo.config.commands import RankConfig
from fgrpo.data.schema import DataError, Example, example_from_json
from fgrpo.ranker import Ranker, RankResult


def rank_input(obj: Any, lineno: int, where: str) -> Example:
    """One example to rank from a decoded JSON line: the dataset schema, or ``{query,
    candidates}`` with candidates as ``{id, text}`` objects or plain texts (ids "1".."N"); a
    missing id is the line number, a missing relevance is not needed. DataError names the
    line and field, an empty pool included."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    cands = obj.get("candidates")
    if not isinstance(cands, list) or not cands:
        raise DataError(f"{where}: field 'candidates' must be a non-empty list (the pool to rank)"
                        + ("" if "candidates" in obj else "; it is missing"))
    cands = [{"id": str(i), "text": c} if isinstance(c, str) else c for i, c in enumerate(cands, start=1)]
    labelled = "relevance" in obj
    obj = {"id": str(lineno), **obj, "candidates": cands}
    if not labelled:  # a placeholder for the schema check (the pool is checked first), removed below
        obj["relevance"] = {str(cands[0].get("id", "")) if isinstance(cands[0], dict) else "": 1}
    example = example_from_json(obj, where)
    return example if labelled else dataclasses.replace(example, relevance={})


def read_examples(lines: Iterable[str], name: str) -> list[Example]:
    """The examples of a JSONL stream (``name`` in messages; a UTF-8 BOM is skipped)."""
    examples = []
    for lineno, line in enumerate(lines, start=1):
        if lineno == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{name}:{lineno}: not valid JSON ({e.msg})") from e
        examples.append(rank_input(obj, lineno, f"{name}:{lineno}"))
    if not examples:
        raise DataError(f"{name}: no example to rank (the input is empty)")
    return examples


def write_rankings(examples: list[Example], results: list[RankResult], sink: IO[str]) -> None:
    """One ``{"id", "slate", "ranking", "valid", "errors", "completion"}`` line per example."""
    for ex, res in zip(examples, results, strict=True):
        sink.write(json.dumps({"id": ex.id, **dataclasses.asdict(res)}) + "\n")


def run_rank(cfg: RankConfig) -> int:
    """Read every example of ``cfg.input`` ('-': stdin), rank them all with the model folder
    ``cfg.model``, then write ``cfg.output`` ('-': stdout; a file is created only once all
    are ranked). Returns the number of examples ranked."""
    name = "<stdin>" if cfg.input == "-" else cfg.input
    if cfg.input == "-":
        examples = read_examples(sys.stdin, name)
    else:
        with open(cfg.input, encoding="utf-8") as source:
            examples = read_examples(source, name)
    ranker = Ranker.from_pretrained(cfg.model, dtype=cfg.dtype, threads=cfg.torch_threads, constrained=cfg.constrained,
                                    max_new_tokens=cfg.max_new_tokens, log_every=cfg.log_every)  # fmt: skip
    results = ranker.rank_examples(examples, cfg.batch_size, progress=True)
    if cfg.output == "-":
        write_rankings(examples, results, sys.stdout)
    else:
        with open(cfg.output, "w", encoding="utf-8") as sink:
            write_rankings(examples, results, sink)
    return len(examples)
