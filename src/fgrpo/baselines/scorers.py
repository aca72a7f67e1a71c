"""Non-learned scorer baselines: Random, Popularity and BM25 (and the shared ranking helpers).

The paper compares the LLM against these classical rows. Each scores every candidate of an
example's pool and ranks the whole pool by score; the top 10 then play the slate and the
top 5 the ranking (:func:`rank_examples`), so a baseline goes through exactly the same
metric code as the LLM's parsed output.

The neural rows (MiniLM dense scorer, SASRec, GRU4Rec) live in ``dense.py`` and
``sequential.py`` and share :func:`order_by_score` and :func:`rank_examples`.

Ties are broken by candidate number (lower first), so results are deterministic. Beware
that this favours candidate 1 among equal scores: the data must shuffle the pool (the
relevant item must not sit at a fixed position), or Popularity/BM25 ties leak the label.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import bm25s

from fgrpo.data.schema import Example


class Scorer(Protocol):
    """The common interface: ``rank(example)`` = all candidate numbers (1-based), best first."""

    name: str

    def rank(self, example: Example) -> list[int]: ...


def order_by_score(scores: Sequence[float]) -> list[int]:
    """Candidate numbers 1..N sorted by decreasing ``scores[k-1]``, ties by lower number."""
    return sorted(range(1, len(scores) + 1), key=lambda k: (-scores[k - 1], k))


class RandomScorer:
    """Uniformly random order, reproducible per example.

    The generator is seeded from ``(seed, example.id)``, so an example's order does not
    depend on which examples were ranked before it (e.g. on sharding or filtering).
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.name = "random"

    def rank(self, example: Example) -> list[int]:
        # Seeding random.Random with a str is stable across processes (no hash randomization).
        rng = random.Random(f"{self.seed}:{example.id}")
        return order_by_score([rng.random() for _ in example.candidates])


class PopularityScorer:
    """Score = how often the candidate id was a positive in the training split.

    Counts each id once per training example where it has grade > 0 in ``relevance``, plus
    once per occurrence in ``meta["history_ids"]`` when the example has it (the items a
    user interacted with before: the usual item-popularity signal in recommendation).
    Ids never seen score 0.
    """

    def __init__(self) -> None:
        self.name = "popularity"
        self.counts: Counter[str] | None = None

    def fit(self, train_examples: Iterable[Example]) -> PopularityScorer:
        counts: Counter[str] = Counter()
        for ex in train_examples:
            counts.update(cid for cid, grade in ex.relevance.items() if grade > 0)
            history = ex.meta.get("history_ids") if isinstance(ex.meta, dict) else None
            if isinstance(history, (list, tuple)):
                counts.update(str(h) for h in history)
        self.counts = counts
        return self

    def scores(self, example: Example) -> list[float]:
        """Training count of each candidate's id (0 for ids never seen)."""
        if self.counts is None:
            raise RuntimeError("PopularityScorer.rank called before fit()")
        counts = self.counts
        return [float(counts.get(c.id, 0)) for c in example.candidates]

    def rank(self, example: Example) -> list[int]:
        return order_by_score(self.scores(example))


class BM25Scorer:
    """Lexical match of the query against each candidate's text, with ``bm25s``.

    One index per example over that example's pool (IDF is therefore pool-local, which is
    what a reranker of a fixed 20-candidate pool sees). Tokenization: ``bm25s.tokenize``,
    lowercased, English stopwords removed, no stemming. A query with no token in the pool's
    vocabulary scores every candidate 0 (the order is then by candidate number).
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75, method: str = "lucene") -> None:
        self.k1 = k1
        self.b = b
        self.method = method
        self.name = "bm25"

    @staticmethod
    def _tokens(texts: list[str]) -> list[list[str]]:
        out: Any = bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)
        return out

    def scores(self, example: Example) -> list[float]:
        """BM25 score of each candidate, index k-1 for candidate k."""
        n = example.num_candidates
        corpus = self._tokens([c.text for c in example.candidates])
        vocab = {tok for doc in corpus for tok in doc}
        # bm25s adds an empty-string token to the index and rejects unknown ids, so keep
        # only real tokens the pool actually contains.
        query = [t for t in self._tokens([example.query])[0] if t and t in vocab]
        if not query:
            return [0.0] * n
        retriever = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        retriever.index(corpus, show_progress=False)
        return [float(s) for s in retriever.get_scores(query)]

    def rank(self, example: Example) -> list[int]:
        return order_by_score(self.scores(example))


def rank_examples(
    scorer: Scorer,
    examples: Iterable[Example],
    slate_size: int = 10,
    rank_size: int = 5,
) -> list[dict[str, Any]]:
    """Run a scorer over examples in the LLM's output shape.

    Returns one ``{"id", "slate", "ranking"}`` per example: ``slate`` = the top
    ``slate_size`` of the pool ranking, ``ranking`` = its top ``rank_size`` (so the
    ranking is always inside the slate, as the LLM's must be); a scorer with a
    ``scores(example)`` method (all but Random) ranks by them, and the row carries them as
    ``scores`` (index k-1 for candidate k; a non-finite score as None, JSON has no -inf). Feed ``ranking`` to
    :func:`fgrpo.evaluation.compute_metrics` and both to ``error_analysis``.

    A scorer with a ``prepare(examples)`` method (the neural ones) gets the whole list
    first, so it can encode in batches rather than one example at a time.
    """
    if slate_size < 1 or rank_size < 1:
        raise ValueError(f"slate_size and rank_size must be >= 1, got {slate_size}, {rank_size}")
    if rank_size > slate_size:
        raise ValueError(f"rank_size ({rank_size}) must not exceed slate_size ({slate_size})")
    examples = list(examples)
    prepare = getattr(scorer, "prepare", None)
    if callable(prepare):
        prepare(examples)
    out = []
    score_of = getattr(scorer, "scores", None)
    for ex in examples:
        scores = score_of(ex) if callable(score_of) else None
        order = order_by_score(scores) if scores is not None else scorer.rank(ex)
        if sorted(order) != list(range(1, ex.num_candidates + 1)):
            raise ValueError(
                f"{scorer.name}: ranking for example {ex.id!r} is not a permutation of "
                f"1..{ex.num_candidates}: {order}"
            )
        row: dict[str, Any] = {"id": ex.id, "slate": order[:slate_size], "ranking": order[:rank_size]}
        if scores is not None:
            row["scores"] = [float(s) if math.isfinite(s) else None for s in scores]
        out.append(row)
    return out
