"""Baselines that do not need the LLM: classical scorers ranking the whole pool."""

from fgrpo.baselines.scorers import (
    BM25Ranker,
    PopularityRanker,
    RandomRanker,
    Ranker,
    order_by_score,
    rank_examples,
)

__all__ = [
    "BM25Ranker",
    "PopularityRanker",
    "RandomRanker",
    "Ranker",
    "order_by_score",
    "rank_examples",
]
