"""The output format: ``<SLATE>[4] [11] [2]</SLATE><RANK>[11] > [4]</RANK>``.

Candidates are referred to by their 1-based number in the prompt's pool. The slate is a
subset of the pool (order carries no meaning); the ranking orders part of the slate, best
first. The parser is strict: it never raises, and reports each phase's validity and the
kinds of error it found, so a malformed completion is penalized and counted, not a crash.

Error kinds (strings, also used as metric names ``parse_errors/<kind>``):

- ``missing_slate_tags`` / ``missing_rank_tags``: an opening or closing tag is absent;
- ``misordered_tags``: tags present but not in the order ``<SLATE></SLATE><RANK></RANK>``;
- ``repeated_tag``: a tag occurs more than once;
- ``leading_text``: non-space text before ``<SLATE>``;
- ``slate_malformed`` / ``rank_malformed``: text inside a phase that is not ``[k]`` items
  and separators (space, comma; ``>`` in the ranking);
- ``slate_empty`` / ``rank_empty``: a phase with no item;
- ``slate_unknown_number`` / ``rank_unknown_number``: ``[k]`` with k outside 1..N;
- ``slate_duplicate`` / ``rank_duplicate``: an item written twice in the phase;
- ``slate_too_long`` / ``rank_too_long``: more items than ``max_slate`` / ``max_rank``;
- ``rank_not_in_slate``: a ranked item that the slate does not contain;
- ``trailing_text``: non-space text after ``</RANK>``.

Which phase an error invalidates: tag errors around the slate, ``leading_text`` and
``slate_*`` invalidate the slate; the ranking is then invalid too (it must be a subset of
a valid slate). ``rank_*``, ``missing_rank_tags`` and ``trailing_text`` invalidate only
the ranking, so a good slate followed by a broken ranking still earns its slate reward.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SLATE_OPEN, SLATE_CLOSE, RANK_OPEN, RANK_CLOSE = "<SLATE>", "</SLATE>", "<RANK>", "</RANK>"
TAGS = (SLATE_OPEN, SLATE_CLOSE, RANK_OPEN, RANK_CLOSE)
STOP_STRING = RANK_CLOSE

ERROR_KINDS = (
    "missing_slate_tags",
    "missing_rank_tags",
    "misordered_tags",
    "repeated_tag",
    "leading_text",
    "slate_malformed",
    "slate_empty",
    "slate_unknown_number",
    "slate_duplicate",
    "slate_too_long",
    "rank_malformed",
    "rank_empty",
    "rank_unknown_number",
    "rank_duplicate",
    "rank_too_long",
    "rank_not_in_slate",
    "trailing_text",
)

_ITEM = re.compile(r"\[([0-9]{1,9})\]")
# an item-token reference such as [i242] (labels=...), of any length: item ids are not
# bounded (items.item_token), and a 64-character hash id must parse like a short one
_REF = re.compile(r"\[[^\[\]\s]+\]")
_SLATE_SEPARATORS = re.compile(r"[\s,]*")
_RANK_SEPARATORS = re.compile(r"[\s,>]*")


@dataclass
class ParsedCompletion:
    """What a completion says, and whether each phase can be trusted.

    ``slate`` and ``ranking`` hold the in-range items in the order written, without
    repeats (best effort, also for invalid phases, for analysis); rewards and metrics use
    them only when the phase is valid. ``slate_end`` is the character index just past
    ``</SLATE>`` (None when absent): the phase boundary used for token masks.
    """

    slate: list[int] = field(default_factory=list)
    ranking: list[int] = field(default_factory=list)
    slate_valid: bool = False
    rank_valid: bool = False
    errors: list[str] = field(default_factory=list)
    slate_end: int | None = None

    @property
    def valid(self) -> bool:
        return self.slate_valid and self.rank_valid


def _ref(k: int, labels: list[str] | None) -> str:
    """Candidate ``k`` as written: ``[k]``, or for item-token models (:mod:`fgrpo.format.items`)
    its item token ``labels[k - 1]`` (e.g. ``[i242]``)."""
    return f"[{k}]" if labels is None else labels[k - 1]


def render_slate(slate: list[int], labels: list[str] | None = None) -> str:
    """The canonical text of the slate phase: ``<SLATE>[4] [11] [2]</SLATE>``."""
    return SLATE_OPEN + " ".join(_ref(k, labels) for k in slate) + SLATE_CLOSE


def render_ranking(ranking: list[int], labels: list[str] | None = None) -> str:
    """The canonical text of the ranking phase: ``<RANK>[11] > [4]</RANK>``."""
    return RANK_OPEN + " > ".join(_ref(k, labels) for k in ranking) + RANK_CLOSE


def render_completion(slate: list[int], ranking: list[int], labels: list[str] | None = None) -> str:
    """The canonical text of a completion (supervised targets, examples in prompts)."""
    return render_slate(slate, labels) + render_ranking(ranking, labels)


def _parse_items(
    body: str,
    separators: re.Pattern[str],
    num_candidates: int,
    prefix: str,
    errors: list[str],
    lookup: dict[str, int] | None = None,
) -> list[int]:
    """Items of one phase body; appends ``<prefix>_<kind>`` errors. Returns unique in-range items.

    With ``lookup`` (label -> candidate number) items are item-token references; one that
    names no candidate of the pool counts as an unknown number (0)."""
    pattern = _ITEM if lookup is None else _REF
    residue = pattern.sub(" ", body)
    if not separators.fullmatch(residue):
        errors.append(f"{prefix}_malformed")
    if lookup is None:
        numbers = [int(m) for m in _ITEM.findall(body)]
    else:
        numbers = [lookup.get(m, 0) for m in _REF.findall(body)]
    if not numbers:
        errors.append(f"{prefix}_empty")
    items: list[int] = []
    seen: set[int] = set()
    unknown = duplicate = False
    for k in numbers:
        if not 1 <= k <= num_candidates:
            unknown = True
            continue
        if k in seen:
            duplicate = True
            continue
        seen.add(k)
        items.append(k)
    if unknown:
        errors.append(f"{prefix}_unknown_number")
    if duplicate:
        errors.append(f"{prefix}_duplicate")
    return items


def parse_completion(
    text: str, num_candidates: int, max_slate: int, max_rank: int, labels: list[str] | None = None
) -> ParsedCompletion:
    """Parse a completion strictly; never raises (see the module docstring for error kinds).

    ``labels``: the pool's item tokens (candidate ``k`` is ``labels[k - 1]``), for
    completions written by item-token models (:mod:`fgrpo.format.items`); items are then
    those tokens, mapped back to candidate numbers, and ``[k]`` is an unknown item.
    """
    out = ParsedCompletion()
    lookup = None if labels is None else {label: k for k, label in enumerate(labels, start=1)}
    errors = out.errors
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    pos = {tag: text.find(tag) for tag in TAGS}
    if any(text.count(tag) > 1 for tag in TAGS):
        errors.append("repeated_tag")

    s_open, s_close, r_open, r_close = (pos[t] for t in TAGS)
    slate_tags_ok = s_open >= 0 and s_close >= 0
    if not slate_tags_ok:
        errors.append("missing_slate_tags")
    elif s_close < s_open:
        errors.append("misordered_tags")
        slate_tags_ok = False
    rank_tags_ok = r_open >= 0 and r_close >= 0
    if not rank_tags_ok:
        errors.append("missing_rank_tags")
    elif r_close < r_open or (slate_tags_ok and r_open < s_close + len(SLATE_CLOSE)):
        if "misordered_tags" not in errors:
            errors.append("misordered_tags")
        rank_tags_ok = False

    # a repeated slate tag breaks the slate; a repeated rank tag only the ranking
    slate_repeated = any(text.count(t) > 1 for t in (SLATE_OPEN, SLATE_CLOSE))
    slate_ok = slate_tags_ok and not slate_repeated
    if slate_tags_ok:
        out.slate_end = s_close + len(SLATE_CLOSE)
        if text[:s_open].strip():
            errors.append("leading_text")
            slate_ok = False
        n_err = len(errors)
        out.slate = _parse_items(
            text[s_open + len(SLATE_OPEN) : s_close], _SLATE_SEPARATORS, num_candidates, "slate", errors, lookup
        )
        if len(out.slate) > max_slate:
            errors.append("slate_too_long")
        slate_ok = slate_ok and len(errors) == n_err
    elif s_close >= 0:
        out.slate_end = s_close + len(SLATE_CLOSE)

    rank_ok = rank_tags_ok and slate_ok and "repeated_tag" not in errors
    if rank_tags_ok:
        n_err = len(errors)
        out.ranking = _parse_items(
            text[r_open + len(RANK_OPEN) : r_close], _RANK_SEPARATORS, num_candidates, "rank", errors, lookup
        )
        if len(out.ranking) > max_rank:
            errors.append("rank_too_long")
        if slate_tags_ok and any(k not in out.slate for k in out.ranking):
            errors.append("rank_not_in_slate")
        if text[r_close + len(RANK_CLOSE) :].strip():
            errors.append("trailing_text")
        rank_ok = rank_ok and len(errors) == n_err
        if slate_tags_ok and text[s_close + len(SLATE_CLOSE) : r_open].strip():
            if "rank_malformed" not in errors:
                errors.append("rank_malformed")
            rank_ok = False

    out.slate_valid = slate_ok
    out.rank_valid = rank_ok
    return out
