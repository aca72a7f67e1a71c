"""The task-neutral Example schema: validation messages, JSONL round trip, skip-and-count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fgrpo.data.schema import (
    Candidate,
    DataError,
    Example,
    example_from_json,
    iter_jsonl,
    read_jsonl,
    write_jsonl,
)


def obj(**kw) -> dict:
    base = {
        "id": "e1",
        "task": "movies",
        "query": "Heat (1995)",
        "candidates": [
            {"id": "a", "text": "A"},
            {"id": "b", "text": "B"},
            {"id": "c", "text": "C"},
        ],
        "relevance": {"c": 2, "a": 1},
        "meta": {"user": "7"},
    }
    base.update(kw)
    return base


def test_valid_example_and_helpers() -> None:
    ex = example_from_json(obj(), "f:1")
    assert ex.num_candidates == 3 and ex.task == "movies" and ex.meta == {"user": "7"}
    assert ex.relevant_numbers() == {1: 1, 3: 2}
    assert ex.grades() == [1, 0, 2]
    assert ex.to_json() == obj()
    assert example_from_json(obj(relevance=["b"]), "f:1").relevance == {"b": 1}
    plain = example_from_json({k: v for k, v in obj().items() if k not in ("task", "meta")}, "w")
    assert plain.task == "generic" and plain.meta == {}


def test_ids_become_strings() -> None:
    ex = example_from_json(
        obj(id=5, candidates=[{"id": 1, "text": "x"}, {"id": 2, "text": "y"}], relevance={"2": 1}),
        "w",
    )
    assert ex.id == "5" and [c.id for c in ex.candidates] == ["1", "2"]


@pytest.mark.parametrize(
    ("bad", "pattern"),
    [
        ([1, 2], "expected a JSON object, got list"),
        ({"query": "q", "candidates": [], "relevance": {}}, "field 'id' is missing"),
        (obj(query=3), "field 'query' must be a string"),
        (obj(candidates=[]), "field 'candidates' must be a non-empty list"),
        (obj(candidates=[{"id": "a"}]), r"field 'candidates\[0\]' must be an object"),
        (
            obj(candidates=[{"id": "a", "text": "A"}, {"id": "a", "text": "B"}]),
            r"field 'candidates\[1\].id': duplicate candidate id 'a'",
        ),
        (
            obj(candidates=[{"id": "a", "text": 1}]),
            r"field 'candidates\[0\].text' must be a string",
        ),
        (obj(relevance={"z": 1}), "id 'z' is not in the candidate pool"),
        (obj(relevance={"a": 1.5}), r"field 'relevance.a': grade must be an integer"),
        (obj(relevance={"a": True}), r"field 'relevance.a': grade must be an integer"),
        (obj(relevance={"a": 0}), "no relevant candidate"),
        (obj(relevance={}), "no relevant candidate"),
        (obj(relevance="a"), "field 'relevance' must be an object"),
        (obj(meta=[]), "field 'meta' must be an object"),
    ],
)
def test_validation_names_where_and_field(bad, pattern: str) -> None:
    with pytest.raises(DataError, match=r"^data.jsonl:9: .*" + pattern):
        example_from_json(bad, "data.jsonl:9")


def test_jsonl_round_trip(tmp_path: Path) -> None:
    exs = [
        Example(
            "x", "Amélie (2001)", [Candidate("1", "Ä"), Candidate("2", "B")], {"2": 1}, "movies"
        ),
        Example("y", "q", [Candidate("3", "C")], {"3": 1}, meta={"position": 4}),
    ]
    path = tmp_path / "sub" / "d.jsonl"
    assert write_jsonl(exs, path) == 2
    assert "Amélie" in path.read_text(encoding="utf-8")  # not \\u-escaped
    back = read_jsonl(path)
    assert [e.to_json() for e in back] == [e.to_json() for e in exs]


def test_bad_lines_raise_or_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    good = json.dumps(obj())
    path.write_text(
        "\n".join([good, "{broken", "", json.dumps(obj(relevance={"q": 1})), json.dumps(obj(id="e2"))]) + "\n"
    )
    with pytest.raises(DataError, match=r"d.jsonl:2: not valid JSON"):
        read_jsonl(path)
    stats: dict[str, int] = {}
    assert len(read_jsonl(path, skip_invalid=True, stats=stats)) == 2
    assert stats == {"skipped": 2, "read": 2}
    path.write_text("\n".join([good, "", "", json.dumps(obj(relevance={"q": 1}))]) + "\n")
    with pytest.raises(DataError, match=r"d.jsonl:4: field 'relevance': id 'q'"):
        list(iter_jsonl(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_prepared_files_pass_the_schema(tmp_path: Path) -> None:
    """What the builders write reads back through the validating reader unchanged."""
    from fgrpo.commands.prepare import run_prepare
    from fgrpo.config.commands import PrepareConfig

    src = tmp_path / "m.jsonl"
    rows = [
        {
            "id": f"m{q}",
            "question": f"Q{q}?",
            "paragraphs": [
                {"idx": k, "title": f"T{q}{k}", "paragraph_text": "x y z", "is_supporting": k == 0}
                for k in range(3)
            ],
        }
        for q in range(10)
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    cfg = PrepareConfig(dataset="musique", input_path=str(src), output_dir=str(out), pool_size=5)
    run_prepare(cfg)
    for split in ("train", "valid", "test"):
        text = (out / f"{split}.jsonl").read_text(encoding="utf-8")
        exs = read_jsonl(out / f"{split}.jsonl")
        assert "".join(json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in exs) == text
