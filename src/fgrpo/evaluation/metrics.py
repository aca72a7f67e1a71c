"""Ranking metrics for slates and rankings, computed by trec_eval (through ir_measures).

Why trec_eval: the paper reports Recall/Precision/Hit/NDCG@k, and reimplementing them is
where evaluation bugs hide. We hand every example to ``pytrec_eval`` via ``ir_measures``
and only do the bookkeeping that trec_eval gets wrong for our use:

* **Order is the model's order.** trec_eval sorts a run by score and breaks ties by doc id,
  so a ranked list is turned into strictly decreasing scores (``len - position``): the
  sort can never reorder it, whatever the doc ids (candidate numbers as strings, where
  ``"10" < "2"``).
* **Every example counts.** trec_eval only evaluates queries present in the run, so an
  example whose output was invalid (empty ranking) would silently vanish from the mean
  and inflate it. Here it scores 0 on every metric and the mean is over *all* examples.

The same function scores the LLM's rankings and the scorer baselines' (see
:func:`fgrpo.baselines.scorers.rank_examples`), so all rows of a results table share one
metric definition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import ir_measures
from ir_measures import RR, P, R, Success, nDCG

# Report name -> ir_measures measure family (the cutoff is added per k). MRR has no cutoff.
_AT_K = {"Recall": R, "Precision": P, "Hit": Success, "NDCG": nDCG}


def metric_keys(ks: Sequence[int] = (1, 3, 5)) -> list[str]:
    """The report keys of :func:`compute_metrics`, in table order."""
    return [f"{name}@{k}" for name in _AT_K for k in ks] + ["MRR"]


def _validate(rankings: Sequence[Sequence[int]], grades: Sequence[Sequence[int]]) -> None:
    if len(rankings) != len(grades):
        raise ValueError(f"{len(rankings)} rankings but {len(grades)} grade lists")
    for i, (ranking, gr) in enumerate(zip(rankings, grades, strict=True)):
        if any(g < 0 for g in gr):
            raise ValueError(f"example {i}: negative grade in {list(gr)}")
        if not any(g > 0 for g in gr):
            raise ValueError(f"example {i}: no relevant candidate (all grades are 0)")
        if len(set(ranking)) != len(ranking):
            raise ValueError(f"example {i}: duplicate candidate numbers in ranking {list(ranking)}")
        bad = [k for k in ranking if not 1 <= k <= len(gr)]
        if bad:
            raise ValueError(f"example {i}: candidate numbers {bad} outside 1..{len(gr)}")


def compute_metrics(
    rankings: Sequence[Sequence[int]],
    grades: Sequence[Sequence[int]],
    ks: Sequence[int] = (1, 3, 5),
) -> dict[str, float]:
    """Mean ranking metrics over all examples.

    Args:
        rankings: ``rankings[i]`` is example i's ranked list of 1-based candidate numbers,
            best first, without duplicates; empty when the output was invalid.
        grades: ``grades[i][k-1]`` is the grade of candidate k of example i (0 = not
            relevant, > 0 relevant; larger is more relevant). Each example needs at least
            one relevant candidate (the schema guarantees it).
        ks: cutoffs.

    Returns:
        ``{"Recall@k", "Precision@k", "Hit@k", "NDCG@k" for k in ks, "MRR"}`` -> mean over
        all examples (values in [0, 1]). Semantics, per example, with ``rel`` the set of
        candidates with grade > 0 and ``top`` the first k entries of the ranking:

        * Recall@k = |top ∩ rel| / |rel|  (trec_eval ``recall_k``)
        * Precision@k = |top ∩ rel| / k, also when fewer than k were ranked: a ranking
          of 1 correct item has P@5 = 0.2 (trec_eval ``P_k``, the standard)
        * Hit@k = 1 if top ∩ rel is non-empty else 0  (trec_eval ``success_k``)
        * NDCG@k = DCG@k / IDCG@k with linear gains = grades and a log2(rank + 1)
          discount; IDCG@k from all relevant grades of the pool sorted in decreasing
          order (trec_eval ``ndcg_cut_k``), so graded relevance counts
        * MRR = 1 / rank of the first relevant entry in the whole ranking as given, 0 if
          none (trec_eval ``recip_rank``); for rankings cut at 5 this is MRR@5

        An example with an empty ranking scores 0 on all of them and counts in the mean.

    Raises:
        ValueError: mismatched lengths, duplicate or out-of-range candidate numbers,
            negative grades, or an example without relevant candidates.
    """
    per_example = per_example_metrics(rankings, grades, ks)
    n = len(rankings)
    return {key: (sum(values) / n if n else 0.0) for key, values in per_example.items()}


def per_example_metrics(
    rankings: Sequence[Sequence[int]],
    grades: Sequence[Sequence[int]],
    ks: Sequence[int] = (1, 3, 5),
) -> dict[str, list[float]]:
    """Each metric of :func:`compute_metrics` per example (same order as ``rankings``);
    an invalid (empty) ranking scores 0."""
    ks = list(ks)
    if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    _validate(rankings, grades)
    n = len(rankings)
    keys = metric_keys(ks)
    values = {key: [0.0] * n for key in keys}
    if n == 0:
        return values

    measure_to_key: dict[Any, str] = {RR: "MRR"}
    for name, family in _AT_K.items():
        for k in ks:
            measure_to_key[family @ k] = f"{name}@{k}"

    # Doc ids are candidate numbers as strings; query ids are example indices.
    qrels = {
        str(i): {str(num): int(g) for num, g in enumerate(gr, start=1)}
        for i, gr in enumerate(grades)
    }
    # Strictly decreasing scores so trec_eval's sort (score desc, then docno) keeps our order.
    run = {
        str(i): {str(num): float(len(ranking) - pos) for pos, num in enumerate(ranking)}
        for i, ranking in enumerate(rankings)
        if ranking
    }
    if run:
        evaluator = ir_measures.pytrec_eval.evaluator(list(measure_to_key), qrels)
        for m in evaluator.iter_calc(run):
            values[measure_to_key[m.measure]][int(m.query_id)] = float(m.value)
    # Queries missing from the run stay 0: every example counts, not only the ones
    # trec_eval saw.
    return values


def ci95_halfwidth(values: Sequence[float]) -> float:
    """Half-width of a normal-approximation 95% confidence interval of the mean
    (1.96 · sample std / √n); 0 for fewer than two values."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return 1.96 * math.sqrt(var / n)


def error_analysis(
    rankings: Sequence[Sequence[int]],
    slates: Sequence[Sequence[int]],
    grades: Sequence[Sequence[int]],
    k: int = 5,
) -> dict[str, float | int]:
    """Where the relevant candidates missing from the top k were lost.

    The paper splits misses into a *slate miss* (the relevant candidate was never put in
    the slate: a candidate-generation error) and a *rank drop* (it was in the slate but
    ranked below k, or left out of the ranking: a ranking error). Counts are pooled over
    all examples (micro average), so an example with many relevant candidates weighs more.

    Returns:
        ``relevant``: relevant candidates in all pools; ``found``: of them, in the top k;
        ``missed`` = relevant - found; ``slate_miss_count`` / ``rank_drop_count``: misses
        not in / in the slate; ``slate_miss`` / ``rank_drop``: those counts as a share of
        ``missed`` (both 0.0 when nothing was missed; otherwise they sum to 1); ``k``.
    """
    if not len(rankings) == len(slates) == len(grades):
        raise ValueError(
            f"lengths differ: {len(rankings)} rankings, {len(slates)} slates, {len(grades)} grades"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    relevant = found = slate_miss = rank_drop = 0
    for ranking, slate, gr in zip(rankings, slates, grades, strict=True):
        rel = {num for num, g in enumerate(gr, start=1) if g > 0}
        missing = rel - set(ranking[:k])
        in_slate = missing & set(slate)
        relevant += len(rel)
        found += len(rel) - len(missing)
        rank_drop += len(in_slate)
        slate_miss += len(missing) - len(in_slate)
    missed = slate_miss + rank_drop
    return {
        "k": k,
        "relevant": relevant,
        "found": found,
        "missed": missed,
        "slate_miss_count": slate_miss,
        "rank_drop_count": rank_drop,
        "slate_miss": slate_miss / missed if missed else 0.0,
        "rank_drop": rank_drop / missed if missed else 0.0,
    }


FOUND, SLATE_MISS, RANK_DROP = "found", "slate_miss", "rank_drop"


def example_errors(ranking: Sequence[int], slate: Sequence[int], grades: Sequence[int], k: int = 5) -> dict[int, str]:
    """Per example, what became of each relevant candidate (number -> ``found``: in the
    top k of the ranking; ``rank_drop``: in the slate but not in the top k; ``slate_miss``:
    never put in the slate). :func:`error_analysis` is these outcomes pooled over a split."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    top, in_slate = set(ranking[:k]), set(slate)
    return {
        num: FOUND if num in top else RANK_DROP if num in in_slate else SLATE_MISS
        for num, g in enumerate(grades, start=1) if g > 0
    }  # fmt: skip


def format_markdown_table(
    rows: Mapping[str, Mapping[str, float]],
    keys: Sequence[str],
    *,
    scale: float = 1.0,
    digits: int = 4,
    label: str = "method",
) -> str:
    """A Markdown table, one row per method/run and one column per key.

    ``scale=100, digits=1`` gives the paper's percentage style (NDCG@5 65.5). A key missing
    from a row is shown as ``-``.
    """

    def cell(text: str) -> str:
        return text.replace("|", r"\|")

    lines = [
        "| " + " | ".join([cell(label), *(cell(k) for k in keys)]) + " |",
        "|" + "---|" + "---:|" * len(keys),
    ]
    for name, values in rows.items():
        cells = [f"{values[k] * scale:.{digits}f}" if k in values else "-" for k in keys]
        lines.append("| " + " | ".join([cell(name), *cells]) + " |")
    return "\n".join(lines) + "\n"
