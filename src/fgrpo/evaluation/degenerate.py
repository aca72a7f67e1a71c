"""Results that look like numbers but mean nothing, flagged: a writer that gives every pool
the same ranking (e.g. always ``[1] > [2] > ... > [5]``), a scorer whose scores tie within
every pool (it then ranks in pool order: Popularity on QA pools, whose passage ids never
recur, scores every passage 0), and outputs of which none is valid.

Pure functions of the prediction rows ``fgrpo eval`` writes (``ranking``, ``slate_valid``,
``rank_valid``, and for scorers ``scores``); each warning is one sentence for the console,
``metrics.md`` ("Warnings") and ``metrics.json`` (``warnings``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

DEGENERATE_SHARE = 0.9  # a pattern in at least this share of the examples is flagged


def most_common_ranking(rankings: Sequence[Sequence[int]]) -> tuple[list[int], int, int]:
    """(the most common non-empty ranking, how many examples wrote it, how many wrote a
    non-empty one); ``([], 0, 0)`` when none did. Ties go to the one seen first."""
    counts = Counter(tuple(r) for r in rankings if len(r))
    if not counts:
        return [], 0, 0
    top, n = counts.most_common(1)[0]
    return list(top), n, sum(counts.values())


def tied_pools(scores: Sequence[Sequence[float | None]]) -> int:
    """How many pools have one score for every candidate (None, e.g. an unseen id's -inf
    written as null, counts as a value like any other)."""
    return sum(1 for s in scores if len(s) > 1 and len(set(s)) == 1)


def _ranking_text(ranking: Sequence[int]) -> str:
    return " > ".join(f"[{k}]" for k in ranking)


def degenerate_warnings(predictions: Sequence[dict[str, Any]], share: float = DEGENERATE_SHARE) -> list[str]:
    """The warnings of a split's predictions (empty: nothing degenerate found)."""
    n = len(predictions)
    if n == 0:
        return []
    out = []
    valid = sum(bool(p.get("slate_valid")) and bool(p.get("rank_valid")) for p in predictions)
    if valid == 0:
        out.append(f"0% valid outputs: none of the {n} answers parsed as a valid slate and ranking, so every "
                   "example scores 0 (check the answer format the model was trained on, max_new_tokens, or "
                   "decode with constrained=true)")
    ranking, same, written = most_common_ranking([p.get("ranking") or [] for p in predictions])
    if written >= 2 and same >= share * n:
        out.append(f"the same ranking {_ranking_text(ranking)} for {100 * same / n:.0f}% of the examples "
                   f"({same} of {n}): the output does not depend on the pool, so the metrics measure "
                   "where the relevant candidates sit in the pools, not the model")
    scored = [p["scores"] for p in predictions if p.get("scores") is not None]
    tied = tied_pools(scored)
    if scored and tied >= share * len(scored):
        out.append(f"the scores are all equal within {100 * tied / len(scored):.0f}% of the pools ({tied} of "
                   f"{len(scored)}): the scorer ranks those pools in pool order (e.g. popularity on pools "
                   "whose ids never occur in training)")
    return out


def warnings_markdown(warnings: Sequence[str]) -> str:
    """The "Warnings" section of ``metrics.md`` ('' without warnings)."""
    if not warnings:
        return ""
    return "\n## Warnings\n\n" + "".join(f"- {w}\n" for w in warnings)
