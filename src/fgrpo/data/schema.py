"""The task-neutral example: one query, a numbered candidate pool, relevance labels.

Stored as JSONL, one example a line::

    {"id": "u42", "task": "movies",
     "query": "Toy Story (1995); Heat (1995); ...",
     "candidates": [{"id": "i50", "text": "Star Wars (1977)"}, ...],
     "relevance": {"i50": 1},
     "meta": {"user": "42"}}

The order of ``candidates`` is the order shown to the model: candidate ``k`` (1-based) is
written ``[k]`` in prompts and completions. ``relevance`` maps candidate ids to a grade
(> 0 means relevant; graded relevance, e.g. 2 > 1, drives NDCG). Every relevant id must be
in the pool; at least one candidate must be relevant.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """Bad input data; the message names the file, line and field."""


@dataclass(frozen=True)
class Candidate:
    id: str
    text: str


@dataclass
class Example:
    id: str
    query: str
    candidates: list[Candidate]
    relevance: dict[str, int]
    task: str = "generic"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_candidates(self) -> int:
        return len(self.candidates)

    def relevant_numbers(self) -> dict[int, int]:
        """1-based candidate number -> grade, for the relevant candidates only."""
        return {
            k: self.relevance[c.id]
            for k, c in enumerate(self.candidates, start=1)
            if self.relevance.get(c.id, 0) > 0
        }

    def grades(self) -> list[int]:
        """Grade of candidate k at index k-1 (0 for non-relevant)."""
        return [max(0, self.relevance.get(c.id, 0)) for c in self.candidates]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "query": self.query,
            "candidates": [{"id": c.id, "text": c.text} for c in self.candidates],
            "relevance": dict(self.relevance),
            "meta": self.meta,
        }


def example_from_json(obj: Any, where: str) -> Example:
    """Validate one decoded JSON object; ``where`` is ``file:line`` for error messages."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in ("id", "query", "candidates", "relevance"):
        if key not in obj:
            raise DataError(f"{where}: field '{key}' is missing")
    if not isinstance(obj["query"], str):
        raise DataError(f"{where}: field 'query' must be a string")
    cands = obj["candidates"]
    if not isinstance(cands, list) or not cands:
        raise DataError(f"{where}: field 'candidates' must be a non-empty list")
    pool: list[Candidate] = []
    seen: set[str] = set()
    for i, c in enumerate(cands):
        if not isinstance(c, dict) or "id" not in c or "text" not in c:
            raise DataError(f"{where}: field 'candidates[{i}]' must be an object with 'id' and 'text'")
        cid = str(c["id"])
        if cid in seen:
            raise DataError(f"{where}: field 'candidates[{i}].id': duplicate candidate id '{cid}'")
        if not isinstance(c["text"], str):
            raise DataError(f"{where}: field 'candidates[{i}].text' must be a string")
        seen.add(cid)
        pool.append(Candidate(cid, c["text"]))
    rel = obj["relevance"]
    if isinstance(rel, list):  # binary relevance given as a list of ids
        rel = {str(r): 1 for r in rel}
    if not isinstance(rel, dict):
        raise DataError(f"{where}: field 'relevance' must be an object id -> grade or a list of ids")
    relevance: dict[str, int] = {}
    for rid, grade in rel.items():
        rid = str(rid)
        if rid not in seen:
            raise DataError(f"{where}: field 'relevance': id '{rid}' is not in the candidate pool")
        if isinstance(grade, bool) or not isinstance(grade, (int, float)) or grade != int(grade):
            raise DataError(f"{where}: field 'relevance.{rid}': grade must be an integer, got {grade!r}")
        relevance[rid] = int(grade)
    if not any(g > 0 for g in relevance.values()):
        raise DataError(f"{where}: field 'relevance': no relevant candidate (all grades <= 0 or empty)")
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'meta' must be an object")
    return Example(
        id=str(obj["id"]),
        query=obj["query"],
        candidates=pool,
        relevance=relevance,
        task=str(obj.get("task", "generic")),
        meta=meta,
    )


def iter_json_lines(
    path: Path, skip_invalid: bool = False, on_skip: Callable[[], None] | None = None
) -> Iterator[tuple[str, Any]]:
    """``(where, decoded object)`` for each non-blank line of a JSON-lines file, ``where``
    being ``file:line``. A line that is not JSON raises :class:`DataError` naming it, or,
    with ``skip_invalid``, is skipped (``on_skip`` is called to count it)."""
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                if not skip_invalid:
                    raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from e
                if on_skip is not None:
                    on_skip()
                continue
            yield where, obj


def iter_jsonl(path: str | Path, skip_invalid: bool = False, stats: dict[str, int] | None = None) -> Iterator[Example]:
    """Examples from a JSONL file. Bad rows raise :class:`DataError` naming file, line and field,
    or, with ``skip_invalid``, are skipped and counted in ``stats['skipped']``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if stats is not None:
        stats.setdefault("skipped", 0)
        stats.setdefault("read", 0)
    def count_skip() -> None:
        if stats is not None:
            stats["skipped"] += 1

    for where, obj in iter_json_lines(path, skip_invalid, count_skip):
        try:
            ex = example_from_json(obj, where)
        except DataError:
            if not skip_invalid:
                raise
            count_skip()
            continue
        if stats is not None:
            stats["read"] += 1
        yield ex


def read_jsonl(path: str | Path, skip_invalid: bool = False, stats: dict[str, int] | None = None) -> list[Example]:
    return list(iter_jsonl(path, skip_invalid=skip_invalid, stats=stats))


def write_jsonl(examples: Iterable[Example], path: str | Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(ex.to_json(), ensure_ascii=False) + "\n")
            n += 1
    return n
