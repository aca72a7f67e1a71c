"""The completion format: ``<SLATE>[4] [11]</SLATE><RANK>[11] > [4]</RANK>``.

Layers: the parser never raises on any string (hypothesis, derandomized); render -> parse
round-trips; one hand-made string per error kind, with the phase validity the module
docstring promises (a good slate followed by a broken ranking keeps its slate reward).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fgrpo.format.completion import (
    ERROR_KINDS,
    RANK_CLOSE,
    RANK_OPEN,
    SLATE_CLOSE,
    SLATE_OPEN,
    ParsedCompletion,
    parse_completion,
    render_completion,
)

FAST = settings(derandomize=True, max_examples=300, deadline=None, database=None)

# ----------------------------------------------------------------------------- invariants


def check_invariants(text: str, p: ParsedCompletion, n: int, max_slate: int, max_rank: int) -> None:
    """What every parse result must satisfy, whatever the input."""
    assert isinstance(p, ParsedCompletion)
    assert set(p.errors) <= set(ERROR_KINDS), p.errors
    assert len(set(p.errors)) == len(p.errors), f"an error kind reported twice: {p.errors}"
    # each phase is valid exactly when no error invalidated it
    assert p.valid == (not p.errors), (text, p)
    assert not p.rank_valid or p.slate_valid, "a valid ranking needs a valid slate"
    # best-effort items: in range, unique, also for invalid phases
    for items in (p.slate, p.ranking):
        assert all(1 <= k <= n for k in items)
        assert len(set(items)) == len(items)
    if p.slate_valid:
        assert 1 <= len(p.slate) <= max_slate
    if p.rank_valid:
        assert 1 <= len(p.ranking) <= max_rank
        assert set(p.ranking) <= set(p.slate)
    close = text.find(SLATE_CLOSE)
    assert p.slate_end == (None if close < 0 else close + len(SLATE_CLOSE))


# fmt: off
FRAGMENTS = st.one_of(
    st.sampled_from(
        [SLATE_OPEN, SLATE_CLOSE, RANK_OPEN, RANK_CLOSE, ">", " > ", " ", ",", "\n", "\t", "[", "]",
         "<", "/", "SLATE", "RANK", "junk", "é", "🙂", "[0]", "[-1]", "[]", "[ 3]", "[1234567890]"]
    ),
    st.integers(min_value=0, max_value=40).map(lambda k: f"[{k}]"),
    st.text(max_size=3),
)
# fmt: on


@FAST
@given(
    text=st.text(max_size=200),
    n=st.integers(0, 30),
    max_slate=st.integers(0, 12),
    max_rank=st.integers(0, 12),
)
def test_parse_never_raises_on_any_text(text: str, n: int, max_slate: int, max_rank: int) -> None:
    check_invariants(text, parse_completion(text, n, max_slate, max_rank), n, max_slate, max_rank)


@FAST
@given(
    parts=st.lists(FRAGMENTS, max_size=30),
    n=st.integers(1, 30),
    max_slate=st.integers(1, 12),
    max_rank=st.integers(1, 12),
)
def test_parse_never_raises_on_tag_soup(
    parts: list[str], n: int, max_slate: int, max_rank: int
) -> None:
    text = "".join(parts)
    check_invariants(text, parse_completion(text, n, max_slate, max_rank), n, max_slate, max_rank)


def test_parse_tolerates_non_strings() -> None:
    p = parse_completion(None, 5, 10, 5)  # type: ignore[arg-type]
    assert not p.slate_valid and not p.rank_valid and "missing_slate_tags" in p.errors


# ----------------------------------------------------------------------------- round trip


@st.composite
def valid_outputs(draw: st.DrawFn) -> tuple[int, int, int, list[int], list[int]]:
    n = draw(st.integers(1, 40))
    max_slate = draw(st.integers(1, 12))
    max_rank = draw(st.integers(1, max_slate))
    slate = draw(st.lists(st.integers(1, n), min_size=1, max_size=min(n, max_slate), unique=True))
    ranking = draw(st.permutations(slate))[: draw(st.integers(1, min(len(slate), max_rank)))]
    return n, max_slate, max_rank, slate, list(ranking)


@FAST
@given(case=valid_outputs())
def test_render_parse_round_trip(case: tuple[int, int, int, list[int], list[int]]) -> None:
    n, max_slate, max_rank, slate, ranking = case
    text = render_completion(slate, ranking)
    p = parse_completion(text, n, max_slate, max_rank)
    assert p.errors == []
    assert p.slate_valid and p.rank_valid
    assert p.slate == slate and p.ranking == ranking
    assert text[: p.slate_end].endswith(SLATE_CLOSE)


@FAST
@given(case=valid_outputs(), data=st.data())
def test_spacing_variants_parse_the_same(
    case: tuple[int, int, int, list[int], list[int]], data: st.DataObject
) -> None:
    n, max_slate, max_rank, slate, ranking = case
    space = st.sampled_from(["", " ", "  ", "\n", " \n\t"])
    slate_sep = st.sampled_from(["", " ", ", ", ",", "\n"])
    rank_sep = st.sampled_from([">", " > ", ", ", " ", "\n> "])
    d = data.draw

    def join(items: list[int], sep: st.SearchStrategy[str]) -> str:
        return "".join((d(sep) if i else "") + f"[{k}]" for i, k in enumerate(items))

    # fmt: off
    text = (
        d(space) + SLATE_OPEN + d(space) + join(slate, slate_sep) + d(space) + SLATE_CLOSE + d(space)
        + RANK_OPEN + d(space) + join(ranking, rank_sep) + d(space) + RANK_CLOSE + d(space)
    )
    # fmt: on
    p = parse_completion(text, n, max_slate, max_rank)
    assert p.errors == [], text
    assert p.slate == slate and p.ranking == ranking


def test_render_canonical_text() -> None:
    assert (
        render_completion([4, 11, 2], [11, 4])
        == "<SLATE>[4] [11] [2]</SLATE><RANK>[11] > [4]</RANK>"
    )


# ----------------------------------------------------------------------------- error kinds

S, R = SLATE_OPEN + "[1] [2] [3]" + SLATE_CLOSE, RANK_OPEN + "[2] > [1]" + RANK_CLOSE
ELEVEN = " ".join(f"[{k}]" for k in range(1, 12))

# fmt: off
# (kind, text, max_slate, max_rank, slate_valid, rank_valid, exact error list); N = 20
ERROR_CASES = [
    ("missing_slate_tags", "[1] [2] [3]" + SLATE_CLOSE + R, 10, 5, False, False, ["missing_slate_tags"]),
    ("missing_slate_tags", SLATE_OPEN + "[1] [2]" + R, 10, 5, False, False, ["missing_slate_tags"]),
    ("missing_rank_tags", S + RANK_OPEN + "[2] > [1]", 10, 5, True, False, ["missing_rank_tags"]),
    ("missing_rank_tags", S, 10, 5, True, False, ["missing_rank_tags"]),
    ("misordered_tags", SLATE_CLOSE + "[1]" + SLATE_OPEN + R, 10, 5, False, False, ["misordered_tags"]),
    ("misordered_tags", S + RANK_CLOSE + "[1]" + RANK_OPEN, 10, 5, True, False, ["misordered_tags"]),
    # the second slate sits between </SLATE> and <RANK>: that is also rank_malformed
    ("repeated_tag", S + SLATE_OPEN + "[4]" + SLATE_CLOSE + R, 10, 5, False, False, ["repeated_tag", "rank_malformed"]),
    ("repeated_tag", SLATE_OPEN + "[1]" + SLATE_OPEN + SLATE_CLOSE + R, 10, 5, False, False,
     ["repeated_tag", "slate_malformed", "rank_not_in_slate"]),
    ("leading_text", "Sure! " + S + R, 10, 5, False, False, ["leading_text"]),
    ("slate_malformed", SLATE_OPEN + "[1] and [2]" + SLATE_CLOSE + R, 10, 5, False, False, ["slate_malformed"]),
    ("slate_malformed", SLATE_OPEN + "[1] > [2]" + SLATE_CLOSE + R, 10, 5, False, False, ["slate_malformed"]),
    ("slate_empty", SLATE_OPEN + " , " + SLATE_CLOSE + RANK_OPEN + "[1]" + RANK_CLOSE, 10, 5, False, False,
     ["slate_empty", "rank_not_in_slate"]),
    ("slate_unknown_number", SLATE_OPEN + "[1] [2] [21]" + SLATE_CLOSE + R, 10, 5, False, False, ["slate_unknown_number"]),
    ("slate_duplicate", SLATE_OPEN + "[1] [2] [1]" + SLATE_CLOSE + R, 10, 5, False, False, ["slate_duplicate"]),
    ("slate_too_long", SLATE_OPEN + ELEVEN + SLATE_CLOSE + R, 10, 5, False, False, ["slate_too_long"]),
    ("rank_malformed", S + RANK_OPEN + "[2] then [1]" + RANK_CLOSE, 10, 5, True, False, ["rank_malformed"]),
    ("rank_malformed", S + " so " + R, 10, 5, True, False, ["rank_malformed"]),
    ("rank_empty", S + RANK_OPEN + " > " + RANK_CLOSE, 10, 5, True, False, ["rank_empty"]),
    ("rank_unknown_number", S + RANK_OPEN + "[2] > [30]" + RANK_CLOSE, 10, 5, True, False, ["rank_unknown_number"]),
    ("rank_duplicate", S + RANK_OPEN + "[2] > [2]" + RANK_CLOSE, 10, 5, True, False, ["rank_duplicate"]),
    ("rank_too_long", S + RANK_OPEN + "[3] > [2] > [1]" + RANK_CLOSE, 10, 2, True, False, ["rank_too_long"]),
    ("rank_not_in_slate", S + RANK_OPEN + "[2] > [4]" + RANK_CLOSE, 10, 5, True, False, ["rank_not_in_slate"]),
    ("trailing_text", S + R + " Hope this helps.", 10, 5, True, False, ["trailing_text"]),
]
# fmt: on


@pytest.mark.parametrize(
    ("kind", "text", "max_slate", "max_rank", "slate_valid", "rank_valid", "errors"),
    ERROR_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(ERROR_CASES)],
)
def test_error_kind(
    kind: str,
    text: str,
    max_slate: int,
    max_rank: int,
    slate_valid: bool,
    rank_valid: bool,
    errors: list[str],
) -> None:
    p = parse_completion(text, 20, max_slate, max_rank)
    assert kind in p.errors
    assert p.errors == errors
    assert (p.slate_valid, p.rank_valid) == (slate_valid, rank_valid)
    check_invariants(text, p, 20, max_slate, max_rank)


def test_every_error_kind_has_a_case() -> None:
    assert {c[0] for c in ERROR_CASES} == set(ERROR_KINDS)


def test_best_effort_items_of_invalid_phases() -> None:
    p = parse_completion(
        SLATE_OPEN + "[1] [2] [21] [1]" + SLATE_CLOSE + RANK_OPEN + "[2] > [2] > [1]" + RANK_CLOSE,
        20, 10, 5,
    )
    assert p.slate == [1, 2] and p.ranking == [2, 1]
    assert not p.slate_valid and not p.rank_valid


def test_whitespace_around_is_not_text() -> None:
    p = parse_completion("\n  " + S + " \n " + R + "\n\n", 20, 10, 5)
    assert p.errors == [] and p.valid
    assert p.slate == [1, 2, 3] and p.ranking == [2, 1]


def test_each_error_kind_reported_once() -> None:
    # text between </SLATE> and <RANK> AND a malformed ranking body: one completion, one count
    p = parse_completion(S + "x" + RANK_OPEN + "y" + RANK_CLOSE, 20, 10, 5)
    assert p.slate_valid and not p.rank_valid
    assert sorted(p.errors) == ["rank_empty", "rank_malformed"], p.errors


def test_non_ascii_digits_are_not_numbers() -> None:
    p = parse_completion("<SLATE>[\u0663]</SLATE><RANK>[\u0663]</RANK>", 20, 10, 5)
    assert not p.slate_valid and "slate_empty" in p.errors


def test_repeated_rank_tag_keeps_a_good_slate() -> None:
    p = parse_completion(S + RANK_OPEN + "[2] " + RANK_OPEN + "[1]" + RANK_CLOSE, 20, 10, 5)
    assert "repeated_tag" in p.errors
    assert p.slate_valid and not p.rank_valid


# ----------------------------------------------------------------------------- public names


def test_top_level_names() -> None:
    import fgrpo

    assert fgrpo.parse_completion is parse_completion
    assert fgrpo.render_completion is render_completion
