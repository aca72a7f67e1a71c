"""Scorer baselines: valid permutations, determinism, and that each beats Random where it should."""

from __future__ import annotations

import random

import pytest

from fgrpo.baselines import (
    BM25Scorer,
    PopularityScorer,
    RandomScorer,
    order_by_score,
    rank_examples,
)
from fgrpo.data.schema import Candidate, Example
from fgrpo.evaluation import compute_metrics

N_ITEMS = 200
POOL = 20


def skewed_examples(n: int, seed: int) -> list[Example]:
    """Recommendation-like fixture: positives drawn from a Zipf-like item distribution,
    negatives uniformly, the pool shuffled (so position carries no signal)."""
    rng = random.Random(seed)
    items = [f"i{j}" for j in range(N_ITEMS)]
    weights = [1.0 / (j + 1) ** 1.2 for j in range(N_ITEMS)]
    out = []
    for e in range(n):
        pos = rng.choices(items, weights)[0]
        negs = rng.sample([it for it in items if it != pos], POOL - 1)
        pool = [pos, *negs]
        rng.shuffle(pool)
        history = rng.choices(items, weights, k=5)
        out.append(
            Example(
                id=f"u{e}",
                query="; ".join(history),
                candidates=[Candidate(it, f"item {it}") for it in pool],
                relevance={pos: 1},
                meta={"history_ids": history},
            )
        )
    return out


# fmt: off
WORDS = [
    "river", "mountain", "forest", "desert", "ocean", "island", "valley", "canyon",
    "glacier", "volcano", "meadow", "swamp", "castle", "bridge", "tower", "harbor",
    "market", "temple", "palace", "garden", "library", "museum", "theater", "stadium",
    "violin", "trumpet", "guitar", "piano", "drum", "flute", "harp", "cello",
]
# fmt: on


def lexical_examples(n: int, seed: int) -> list[Example]:
    """QA-like fixture: the relevant passage shares two words with the query; others don't."""
    rng = random.Random(seed)
    out = []
    for e in range(n):
        q_words = rng.sample(WORDS, 3)
        other = [w for w in WORDS if w not in q_words]
        texts = [" ".join(rng.sample(other, 4)) for _ in range(POOL)]
        gold = rng.randrange(POOL)
        texts[gold] = " ".join([*q_words[:2], *rng.sample(other, 2)])
        out.append(
            Example(
                id=f"q{e}",
                query=f"what is the {' '.join(q_words)}?",
                candidates=[Candidate(f"p{j}", t) for j, t in enumerate(texts)],
                relevance={f"p{gold}": 1},
            )
        )
    return out


def ndcg5(ranker, examples) -> float:
    runs = rank_examples(ranker, examples)
    return compute_metrics([r["ranking"] for r in runs], [ex.grades() for ex in examples])["NDCG@5"]


def test_order_by_score_breaks_ties_by_number():
    assert order_by_score([0.5, 1.0, 0.5, 1.0]) == [2, 4, 1, 3]
    assert order_by_score([]) == []


@pytest.mark.parametrize("make", [lambda tr: RandomScorer(3), lambda tr: PopularityScorer().fit(tr),
                                  lambda tr: BM25Scorer()])  # fmt: skip
def test_rankings_are_permutations(make):
    examples = skewed_examples(20, seed=1) + lexical_examples(20, seed=2)
    ranker = make(skewed_examples(50, seed=3))
    assert isinstance(ranker.name, str) and ranker.name
    for ex in examples:
        order = ranker.rank(ex)
        assert sorted(order) == list(range(1, ex.num_candidates + 1))
        assert ranker.rank(ex) == order  # deterministic


def test_random_is_seeded_per_example():
    examples = skewed_examples(30, seed=4)
    a = [RandomScorer(5).rank(ex) for ex in examples]
    b = [RandomScorer(5).rank(ex) for ex in reversed(examples)][::-1]
    assert a == b  # independent of call order
    assert a != [RandomScorer(6).rank(ex) for ex in examples]


def test_rank_examples_shape():
    examples = lexical_examples(5, seed=5)
    runs = rank_examples(BM25Scorer(), examples, slate_size=10, rank_size=5)
    for ex, r in zip(examples, runs, strict=True):
        assert r["id"] == ex.id
        assert len(r["slate"]) == 10 and len(r["ranking"]) == 5
        assert r["ranking"] == r["slate"][:5]
    small = Example("s", "x", [Candidate("a", "x"), Candidate("b", "y")], {"a": 1})
    # a scorer with scores() carries them (both 0 here: one-letter words are no BM25 tokens)
    assert rank_examples(BM25Scorer(), [small]) == [{"id": "s", "slate": [1, 2], "ranking": [1, 2], "scores": [0.0, 0.0]}]
    assert "scores" not in rank_examples(RandomScorer(0), [small])[0]
    with pytest.raises(ValueError):
        rank_examples(BM25Scorer(), examples, slate_size=3, rank_size=5)


def test_popularity_beats_random_on_skewed_data():
    train = skewed_examples(400, seed=10)
    test = skewed_examples(300, seed=11)
    pop = ndcg5(PopularityScorer().fit(train), test)
    rnd = ndcg5(RandomScorer(0), test)
    assert pop > rnd + 0.15, (pop, rnd)


def test_popularity_counts_relevance_and_history():
    train = [
        Example("t1", "", [Candidate("a", ""), Candidate("b", "")], {"a": 1, "b": 0},
                meta={"history_ids": ["b", "b"]}),
        Example("t2", "", [Candidate("a", ""), Candidate("c", "")], {"c": 2}),
    ]  # fmt: skip
    pop = PopularityScorer().fit(train)
    assert pop.counts == {"a": 1, "b": 2, "c": 1}
    ex = Example("x", "", [Candidate("z", ""), Candidate("c", ""), Candidate("b", "")], {"z": 1})
    assert pop.rank(ex) == [3, 2, 1]
    with pytest.raises(RuntimeError):
        PopularityScorer().rank(ex)


def test_bm25_beats_random_on_lexical_data():
    test = lexical_examples(100, seed=12)
    bm25 = ndcg5(BM25Scorer(), test)
    rnd = ndcg5(RandomScorer(0), test)
    assert bm25 > 0.95 and bm25 > rnd + 0.5, (bm25, rnd)


def test_bm25_handles_queries_without_known_words():
    ex = Example(
        "e",
        "the of and",  # only stopwords
        [Candidate("a", "apple"), Candidate("b", ""), Candidate("c", "zebra apple")],
        {"c": 1},
    )
    assert BM25Scorer().rank(ex) == [1, 2, 3]
    ex.query = "unknown words"
    assert BM25Scorer().rank(ex) == [1, 2, 3]
    ex.query = "zebra"
    assert BM25Scorer().rank(ex)[0] == 3
