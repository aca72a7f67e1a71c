"""compute_metrics (trec_eval via ir_measures) against a plain-Python reference, and by hand."""

from __future__ import annotations

import math
import random

import pytest

from fgrpo.evaluation import compute_metrics, error_analysis, format_markdown_table, metric_keys

KS = (1, 3, 5)


# ---- independent reference: textbook formulas, one example at a time ----------------------


def ref_one(ranking: list[int], grades: list[int], k: int) -> dict[str, float]:
    rel = {num: g for num, g in enumerate(grades, start=1) if g > 0}
    top = ranking[:k]
    hits = sum(1 for d in top if d in rel)
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(top))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return {
        f"Recall@{k}": hits / len(rel),
        f"Precision@{k}": hits / k,
        f"Hit@{k}": 1.0 if hits else 0.0,
        f"NDCG@{k}": dcg / idcg,
    }


def ref_mrr(ranking: list[int], grades: list[int]) -> float:
    for i, d in enumerate(ranking):
        if grades[d - 1] > 0:
            return 1.0 / (i + 1)
    return 0.0


def ref_metrics(rankings, grades, ks=KS) -> dict[str, float]:
    totals = dict.fromkeys(metric_keys(ks), 0.0)
    for ranking, gr in zip(rankings, grades, strict=True):
        for k in ks:
            for key, v in ref_one(ranking, gr, k).items():
                totals[key] += v
        totals["MRR"] += ref_mrr(ranking, gr)
    return {key: v / len(rankings) for key, v in totals.items()}


def random_case(rng: random.Random) -> tuple[list[int], list[int]]:
    n = rng.randint(1, 25)
    grades = [0] * n
    n_rel = rng.randint(1, min(n, 5))
    max_grade = rng.choice([1, 1, 3])  # binary and graded relevance
    for num in rng.sample(range(n), n_rel):
        grades[num] = rng.randint(1, max_grade)
    roll = rng.random()
    if roll < 0.15:
        ranking: list[int] = []  # invalid output
    elif roll < 0.3:
        ranking = rng.sample(range(1, n + 1), n)  # whole pool
    else:
        ranking = rng.sample(range(1, n + 1), rng.randint(1, min(n, 7)))
    return ranking, grades


# ---- tests -----------------------------------------------------------------------------------


def test_matches_reference_on_random_cases():
    rng = random.Random(1234)
    for _ in range(40):
        cases = [random_case(rng) for _ in range(rng.randint(1, 12))]
        rankings = [c[0] for c in cases]
        grades = [c[1] for c in cases]
        got = compute_metrics(rankings, grades, ks=KS)
        want = ref_metrics(rankings, grades)
        assert list(got) == list(want)
        for key in want:
            assert got[key] == pytest.approx(want[key], abs=1e-6), key


def test_per_example_values_match_reference():
    # One example at a time: a mismatch can't average away.
    rng = random.Random(7)
    for _ in range(200):
        ranking, grades = random_case(rng)
        got = compute_metrics([ranking], [grades], ks=(1, 2, 3, 5, 10))
        want = ref_metrics([ranking], [grades], ks=(1, 2, 3, 5, 10))
        for key in want:
            assert got[key] == pytest.approx(want[key], abs=1e-6), (key, ranking, grades)


def test_hand_worked_single_relevant_at_rank_two():
    m = compute_metrics([[3, 1, 2]], [[1, 0, 0]])
    assert m["NDCG@3"] == pytest.approx(1 / math.log2(3))
    assert m["MRR"] == pytest.approx(0.5)
    assert m["Hit@1"] == 0.0
    assert m["Hit@3"] == 1.0
    assert m["Recall@1"] == 0.0
    assert m["Recall@3"] == 1.0
    assert m["Precision@3"] == pytest.approx(1 / 3)
    assert m["Precision@5"] == pytest.approx(1 / 5)  # divides by k although only 3 ranked


def test_hand_worked_graded():
    # grades: cand 1 -> 2, cand 2 -> 1. Ranking [2, 1]: DCG = 1 + 2/log2(3);
    # IDCG = 2 + 1/log2(3).
    m = compute_metrics([[2, 1]], [[2, 1, 0]], ks=(1, 2))
    assert m["NDCG@1"] == pytest.approx(1 / 2)
    assert m["NDCG@2"] == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert m["MRR"] == 1.0


def test_ideal_dcg_uses_all_relevant_in_pool():
    # Three relevant, only one ranked: NDCG@5 = 1 / (1 + 1/log2 3 + 1/2).
    m = compute_metrics([[4]], [[1, 1, 0, 1, 0]])
    assert m["NDCG@5"] == pytest.approx(1 / (1 + 1 / math.log2(3) + 0.5))
    assert m["Recall@5"] == pytest.approx(1 / 3)


def test_order_preserved_when_doc_ids_sort_differently():
    # "10" < "2" as strings and by any tie-break; the model's order must still win.
    grades = [0] * 10
    grades[1] = 1  # candidate 2
    grades[9] = 2  # candidate 10
    best = compute_metrics([[10, 2]], [grades], ks=(1, 2))
    worse = compute_metrics([[2, 10]], [grades], ks=(1, 2))
    assert best["NDCG@1"] == pytest.approx(1.0)
    assert best["NDCG@2"] == pytest.approx(1.0)
    assert worse["NDCG@1"] == pytest.approx(0.5)
    assert worse["NDCG@2"] < 1.0
    # A long ranking whose numeric and string orders disagree everywhere.
    ranking = [12, 3, 11, 2, 10, 1]
    grades = [0] * 12
    grades[11] = 3  # candidate 12 first
    m = compute_metrics([ranking], [grades], ks=(1,))
    assert m["NDCG@1"] == 1.0 and m["MRR"] == 1.0


def test_empty_rankings_count_as_zero():
    grades = [[1, 0, 0], [0, 1, 0]]
    full = compute_metrics([[1], [2]], grades)
    half = compute_metrics([[1], []], grades)
    for key in metric_keys():
        assert half[key] == pytest.approx(full[key] / 2), key
    none = compute_metrics([[], []], grades)
    assert all(v == 0.0 for v in none.values())


def test_keys_and_empty_input():
    assert metric_keys((1, 3)) == [
        "Recall@1", "Recall@3", "Precision@1", "Precision@3",
        "Hit@1", "Hit@3", "NDCG@1", "NDCG@3", "MRR",
    ]  # fmt: skip
    assert compute_metrics([], [], ks=(1,)) == dict.fromkeys(metric_keys((1,)), 0.0)


@pytest.mark.parametrize(
    ("rankings", "grades"),
    [
        ([[1, 1]], [[1, 0]]),  # duplicate
        ([[3]], [[1, 0]]),  # out of range
        ([[0]], [[1, 0]]),  # numbers are 1-based
        ([[1]], [[0, 0]]),  # nothing relevant
        ([[1]], [[1], [1]]),  # length mismatch
    ],
)
def test_invalid_input_raises(rankings, grades):
    with pytest.raises(ValueError):
        compute_metrics(rankings, grades)


def test_error_analysis_hand_worked():
    # ex 1: relevant {1, 2, 3}; top-2 = [1, 4] -> 2 and 3 missed; 2 in slate (rank drop),
    #       3 not (slate miss).
    # ex 2: relevant {2}; invalid ranking, slate has it -> rank drop.
    # ex 3: relevant {1}; found.
    rankings = [[1, 4, 2], [], [1]]
    slates = [[1, 4, 2], [2, 1], [1, 2]]
    grades = [[1, 1, 2, 0], [0, 1], [1, 0]]
    out = error_analysis(rankings, slates, grades, k=2)
    assert out == {
        "k": 2,
        "relevant": 5,
        "found": 2,
        "missed": 3,
        "slate_miss_count": 1,
        "rank_drop_count": 2,
        "slate_miss": pytest.approx(1 / 3),
        "rank_drop": pytest.approx(2 / 3),
    }


def test_error_analysis_nothing_missed_and_all_slate_miss():
    perfect = error_analysis([[2]], [[2]], [[0, 1]], k=5)
    assert perfect["missed"] == 0 and perfect["slate_miss"] == 0.0 and perfect["rank_drop"] == 0.0
    empty = error_analysis([[]], [[]], [[1, 1]], k=5)
    assert empty["slate_miss_count"] == 2 and empty["slate_miss"] == 1.0
    assert empty["rank_drop"] == 0.0


def test_format_markdown_table():
    rows = {"Random": {"NDCG@5": 0.1234, "MRR": 0.2}, "F-GRPO": {"NDCG@5": 0.655}}
    table = format_markdown_table(rows, ["NDCG@5", "MRR"], scale=100, digits=1)
    assert table.splitlines() == [
        "| method | NDCG@5 | MRR |",
        "|---|---:|---:|",
        "| Random | 12.3 | 20.0 |",
        "| F-GRPO | 65.5 | - |",
    ]


def test_per_example_metrics_and_ci95_by_hand() -> None:
    from fgrpo.evaluation.metrics import ci95_halfwidth, per_example_metrics

    grades = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]]
    rankings = [[1, 2], [1, 2], [], [2, 3, 1]]  # hit at 1, hit at 2, invalid, hit at 3
    per = per_example_metrics(rankings, grades, (1, 3))
    assert per["Hit@1"] == [1.0, 0.0, 0.0, 0.0]
    assert per["MRR"] == pytest.approx([1.0, 0.5, 0.0, 1 / 3])
    assert per["NDCG@3"] == pytest.approx([1.0, 1 / math.log2(3), 0.0, 0.5])
    assert compute_metrics(rankings, grades, (1, 3))["MRR"] == pytest.approx(sum(per["MRR"]) / 4)
    # Hit@1 = [1, 0, 0, 0]: mean 0.25, sample std 0.5, half-width 1.96 * 0.5 / 2
    assert ci95_halfwidth(per["Hit@1"]) == pytest.approx(0.49)
    assert ci95_halfwidth([0.3]) == 0.0
