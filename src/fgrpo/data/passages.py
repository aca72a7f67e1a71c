"""Multi-hop QA examples: pick and rank the supporting passages of a question from a pool.

Scope: from :class:`~fgrpo.data.qa.Question` records (:mod:`fgrpo.data.qa` reads them),
build task ``"passages"`` :class:`~fgrpo.data.schema.Example` objects with fixed-size pools
and a question-level train/valid/test split. No prompts, no tokenization.

Choices and why
    * Whitespace is collapsed everywhere and passage text is cut to ``max_passage_words``
      whitespace-separated words: a cheap, tokenizer-free bound on prompt length.
    * Pools smaller than ``pool_size`` are padded with passages of *other questions of the
      same split* (so no test passage shows up in training), never one whose title is
      already in the pool; larger pools keep every relevant passage and drop non-relevant
      ones at random. If a split has too few passages to pad from, the pool stays short
      and is counted (``short_pools``).
    * The split is by question, never mixing a question's examples, from a permutation
      seeded by ``seed``; every question then draws from its own generator seeded by
      ``[seed, hash(question id)]``, so outputs are byte-identical for a seed and a
      question's pool does not depend on which others are kept.
"""

from __future__ import annotations

import numpy as np

from fgrpo.data.common import SPLITS, bump, stable_int, subsample_indices
from fgrpo.data.qa import Passage, Question, clean, normalize
from fgrpo.data.schema import Candidate, DataError, Example

TASK = "passages"


def truncate_words(text: str, max_words: int | None) -> str:
    """``text`` cut to ``max_words`` whitespace-separated words (None: no cut), spaces collapsed."""
    words = text.split()
    return " ".join(words if max_words is None else words[:max_words])


def candidate_text(p: Passage, max_words: int | None = None) -> str:
    """``"Title: paragraph"`` as shown to the model."""
    text = truncate_words(p.text, max_words)
    title = clean(p.title)
    return f"{title}: {text}" if title else text


def split_questions(
    questions: list[Question], seed: int, valid_fraction: float, test_fraction: float
) -> dict[str, list[Question]]:
    """Disjoint train/valid/test sets of questions (file order kept inside each split)."""
    if not (
        0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1
    ):
        raise ValueError(
            f"valid_fraction ({valid_fraction}) and test_fraction ({test_fraction}) must be in "
            "[0, 1) and sum to less than 1"
        )
    n = len(questions)
    n_test, n_valid = round(n * test_fraction), round(n * valid_fraction)
    perm = np.random.default_rng([seed, 0x5B17]).permutation(n).tolist()
    parts = {
        "test": perm[:n_test],
        "valid": perm[n_test : n_test + n_valid],
        "train": perm[n_test + n_valid :],
    }
    return {s: [questions[i] for i in sorted(parts[s])] for s in SPLITS}


def _pad(
    rng: np.random.Generator,
    pool: list[Passage],
    own: int,
    source: list[tuple[int, Passage, str]],
    need: int,
) -> list[Passage]:
    """Up to ``need`` passages of other questions, titles new to the pool, all distinct."""
    ids = {p.id for p in pool}
    titles = {normalize(p.title) for p in pool}
    chosen: list[Passage] = []

    def take(j: int) -> None:
        q_idx, p, title = source[j]
        if q_idx != own and p.id not in ids and title not in titles:
            ids.add(p.id)
            titles.add(title)
            chosen.append(Passage(p.id, p.title, p.text, False))

    attempts = 0
    while len(chosen) < need and attempts < 20 * need + 100 and source:
        take(int(rng.integers(len(source))))
        attempts += 1
    if len(chosen) < need:  # rejection sampling struggled: scan everything once
        for j in rng.permutation(len(source)).tolist():
            if len(chosen) == need:
                break
            take(j)
    return chosen


def build_qa(
    questions: list[Question],
    *,
    source: str,
    seed: int = 0,
    pool_size: int = 20,
    max_passage_words: int | None = 128,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    max_examples: int | None = None,
    skip_invalid: bool = False,
    stats: dict[str, int] | None = None,
) -> dict[str, list[Example]]:
    """Examples ``{"train", "valid", "test"}`` with pools of ``pool_size`` (see module doc).

    ``source`` is recorded in each example's ``meta``; ``max_examples`` keeps a seeded
    subset of each split (padding still draws from the whole split).
    """
    if pool_size < 2:
        raise ValueError(f"pool_size must be >= 2, got {pool_size}")
    if max_passage_words is not None and max_passage_words < 1:
        raise ValueError(f"max_passage_words must be >= 1 or None, got {max_passage_words}")
    out: dict[str, list[Example]] = {}
    for s_idx, (split, qs) in enumerate(
        split_questions(questions, seed, valid_fraction, test_fraction).items()
    ):
        pad_source = [(i, p, normalize(p.title)) for i, q in enumerate(qs) for p in q.passages]
        examples = []
        for i in subsample_indices(len(qs), max_examples, seed, s_idx):
            q = qs[i]
            gold = [p for p in q.passages if p.supporting]
            if len(gold) > pool_size:
                msg = (
                    f"{q.where}: field '{q.pool_field}': {len(gold)} relevant passages do not "
                    f"fit in pool_size {pool_size}"
                )
                if not skip_invalid:
                    raise DataError(msg)
                bump(stats, "skipped_questions_too_many_relevant")
                continue
            rng = np.random.default_rng([seed, stable_int(q.id)])
            pool = list(q.passages)
            padded = 0
            if len(pool) > pool_size:
                others = [p for p in pool if not p.supporting]
                keep = set(rng.choice(len(others), pool_size - len(gold), replace=False).tolist())
                kept_ids = {p.id for p in gold} | {others[k].id for k in keep}
                bump(stats, "pool_passages_cut", len(pool) - pool_size)
                pool = [p for p in pool if p.id in kept_ids]
            elif len(pool) < pool_size:
                extra = _pad(rng, pool, i, pad_source, pool_size - len(pool))
                padded = len(extra)
                bump(stats, "padding_passages", padded)
                pool += extra
                if len(pool) < pool_size:
                    bump(stats, "short_pools")
            candidates = []
            for k in rng.permutation(len(pool)).tolist():
                p = pool[k]
                if max_passage_words is not None and len(p.text.split()) > max_passage_words:
                    bump(stats, "passages_truncated")
                candidates.append(Candidate(p.id, candidate_text(p, max_passage_words)))
            examples.append(
                Example(
                    id=q.id,
                    query=q.question,
                    candidates=candidates,
                    relevance={p.id: 1 for p in gold},
                    task=TASK,
                    meta={"source": source, "num_relevant": len(gold), "padded": padded},
                )
            )
        out[split] = examples
    return out
