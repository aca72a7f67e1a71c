"""``fgrpo rank``: a slate and a ranking for every example read, with a trained model.

read (JSONL of examples, relevance labels not needed) -> load (the model folder, parsed with
the limits its ``fgrpo.json`` records) -> decode -> write (one JSON line per example).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from fgrpo.data.schema import DataError, Example, example_from_json
from fgrpo.ranker import Ranker, RankResult


def read_examples(lines: Iterable[str], name: str) -> list[Example]:
    """The examples of a JSONL stream (``name`` in messages); a placeholder relevance is
    added where none is given (ranking needs no labels). DataError names line and field."""
    examples = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{name}:{lineno}: not valid JSON ({e.msg})") from e
        if isinstance(obj, dict) and "relevance" not in obj and obj.get("candidates"):
            obj = {**obj, "relevance": {str(obj["candidates"][0].get("id")): 1}}  # placeholder: not used
        examples.append(example_from_json(obj, f"{name}:{lineno}"))
    return examples


def write_rankings(examples: list[Example], results: list[RankResult], sink: IO[str]) -> None:
    """One ``{"id", "slate", "ranking", "valid", "errors", "completion"}`` line per example."""
    for ex, res in zip(examples, results, strict=True):
        sink.write(json.dumps({"id": ex.id, **dataclasses.asdict(res)}) + "\n")


def run_rank(model: Path, input: str, output: str, batch_size: int, constrained: bool) -> None:  # noqa: A002
    """Read every example of ``input`` ('-': stdin), rank them all with the model folder
    ``model``, then write ``output`` ('-': stdout; a file is created only once all are ranked)."""
    source = sys.stdin if input == "-" else open(input, encoding="utf-8")  # noqa: SIM115
    examples = read_examples(source, "<stdin>" if input == "-" else input)
    results = Ranker.from_pretrained(model, constrained=constrained).rank_examples(examples, batch_size)
    if output == "-":
        write_rankings(examples, results, sys.stdout)
        return
    with open(output, "w", encoding="utf-8") as sink:
        write_rankings(examples, results, sink)
