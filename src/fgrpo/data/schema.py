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
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fgrpo.config import short


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
    # ``file:line`` it was read from (empty when built in code): named by later checks
    source: str = field(default="", compare=False, repr=False)

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
            raise DataError(f"{where}: field 'candidates[{i}].id': duplicate candidate id {short(cid)}")
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
            raise DataError(f"{where}: field 'relevance': id {short(rid)} is not in the candidate pool")
        if (
            isinstance(grade, bool)
            or not isinstance(grade, (int, float))
            or (isinstance(grade, float) and not math.isfinite(grade))  # NaN, Infinity, 1e999
            or grade != int(grade)
        ):
            name = rid if len(rid) <= 40 else rid[:40] + "…"
            raise DataError(f"{where}: field 'relevance.{name}': grade must be an integer, got {short(grade)}")
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
        source=where,
    )


def json_error_text(e: json.JSONDecodeError) -> str:
    """``"<message> at column N"``; json's own message sometimes ends in "at" already
    ("Invalid control character at"), which would read "at at column"."""
    return f"{e.msg.removesuffix(' at')} at column {e.colno}"


BOM = b"\xef\xbb\xbf"  # a UTF-8 byte-order mark, which some editors write at the start of a file


def decode_json_line(raw: bytes, where: str) -> Any:
    """The JSON value of one line (a leading byte-order mark dropped), ``None`` for a blank
    line, or a :class:`DataError` naming ``where`` when it is not UTF-8 or not JSON."""
    try:
        line = raw.removeprefix(BOM).decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None
    if not line.strip():
        return None
    try:
        return json.loads(line)
    except (json.JSONDecodeError, RecursionError) as e:
        why = json_error_text(e) if isinstance(e, json.JSONDecodeError) else "nested too deeply"
        raise DataError(f"{where}: not valid JSON ({why})") from None


def iter_raw_json_lines(path: Path) -> Iterator[tuple[str, bytes]]:
    """``(file:line, raw bytes)`` of each line of a file, the first one's byte-order mark dropped."""
    with Path(path).open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            yield f"{path}:{lineno}", raw.removeprefix(BOM) if lineno == 1 else raw


def iter_json_lines(
    path: Path, skip_invalid: bool = False, on_skip: Callable[[], None] | None = None
) -> Iterator[tuple[str, Any]]:
    """``(where, decoded object)`` for each non-blank line of a JSON-lines file, ``where``
    being ``file:line``. A line that is not UTF-8 or not JSON raises :class:`DataError`
    naming it, or, with ``skip_invalid``, is skipped (``on_skip`` is called to count it).
    A byte-order mark at the start of the file is dropped, not reported."""
    for where, raw in iter_raw_json_lines(path):
        try:
            obj = decode_json_line(raw, where)
        except DataError:
            if not skip_invalid:
                raise
            if on_skip is not None:
                on_skip()
            continue
        if obj is not None:
            yield where, obj


def iter_jsonl(path: str | Path, skip_invalid: bool = False, stats: dict[str, int] | None = None) -> Iterator[Example]:
    """Examples from a JSONL file. Bad rows raise :class:`DataError` naming file, line and field,
    or, with ``skip_invalid``, are skipped and counted in ``stats['skipped']``. An example id
    seen before in the file is a bad row too: prompts are cached by id, so the second row
    would be trained on the first row's prompt with its own grades."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if stats is not None:
        stats.setdefault("skipped", 0)
        stats.setdefault("read", 0)

    def count_skip() -> None:
        if stats is not None:
            stats["skipped"] += 1

    first_line: dict[str, str] = {}
    for where, obj in iter_json_lines(path, skip_invalid, count_skip):
        try:
            ex = example_from_json(obj, where)
            if ex.id in first_line:
                raise DataError(
                    f"{where}: field 'id': duplicate example id {short(ex.id)} (first at line "
                    f"{first_line[ex.id].rsplit(':', 1)[-1]}); ids must be unique within a split"
                )
        except DataError:
            if not skip_invalid:
                raise
            count_skip()
            continue
        first_line[ex.id] = where
        if stats is not None:
            stats["read"] += 1
        yield ex


def read_jsonl(path: str | Path, skip_invalid: bool = False, stats: dict[str, int] | None = None) -> list[Example]:
    return list(iter_jsonl(path, skip_invalid=skip_invalid, stats=stats))


def read_split(path: str | Path, skip_invalid: bool = False, report: dict[str, Any] | None = None) -> list[Example]:
    """A split a command needs: :func:`read_jsonl`, then a :class:`DataError` when no example
    is left (an empty or blank file, or every row skipped). ``report`` (when given) gets
    ``{str(path): {"read": n, "skipped": m}}``, for the console and the run's outputs."""
    stats: dict[str, int] = {}
    examples = read_jsonl(path, skip_invalid, stats)
    if report is not None:
        report[str(path)] = {"read": stats["read"], "skipped": stats["skipped"]}
    if not examples:
        why = f"all {stats['skipped']} rows are invalid (skipped)" if stats["skipped"] else "the file is empty or blank"
        raise DataError(f"{path}: no examples: {why}")
    return examples


def skipped_rows_lines(report: dict[str, Any]) -> list[str]:
    """One console line per file of a :func:`read_split` report that had rows skipped."""
    return [
        f"data: skipped {c['skipped']} invalid row(s) of {name} (skip_invalid_rows=true); {c['read']} read"
        for name, c in report.items()
        if c.get("skipped")
    ]


def write_jsonl(examples: Iterable[Example], path: str | Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(ex.to_json(), ensure_ascii=False) + "\n")
            n += 1
    return n
