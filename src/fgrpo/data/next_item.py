"""Next-item examples from interaction logs (:mod:`fgrpo.data.movielens` reads them).

Scope: turn every user's history into next-item examples (the task-neutral
:class:`~fgrpo.data.schema.Example`) under the protocol the paper follows (LLaRA's), and
nothing else: no prompts, no tokenization.

Protocol (LLaRA's, used by the paper)
    Chronological leave-one-out per user: interactions sorted by timestamp, ties broken by
    item id. The last item is the test target, the one before the validation target, and
    every earlier position ``t >= 1`` a training target whose history is the items before
    it. The query shows the last ``history_len`` titles, most recent last, one a line. The
    pool is the target plus ``pool_size - 1`` negatives drawn uniformly, without
    replacement, from the catalogue minus the user's full history (minus items whose title
    equals a history title: MovieLens lists a few films twice under two ids, and two
    identical lines in a pool would make the label ambiguous), then shuffled; candidate
    ``k`` is ``[k]`` in prompts. Users with fewer than 3 interactions give no test, valid
    and train example each, so they are skipped and counted.

Several targets (``num_targets = m > 1``, the coverage-bound protocol)
    The relevant set is the user's next ``m`` interactions. With the user's ``n`` items in
    the same order: the test relevant set is the last ``m`` items ``n-m..n-1``, the valid
    one the ``m`` before them, and every training row a window of ``m`` consecutive items
    ``t..t+m-1`` that ends before the first valid item (``t >= 1``, ``t + m <= n - 2m``),
    its history the items before ``t``. So no valid or test item is a training target or
    sits in a training history of that user, and the valid/test queries show the items
    just before their own targets (the test history may hold valid items, as with one
    target). The pool is the ``m`` targets plus ``pool_size - m`` negatives drawn as above.
    Grades: ``binary`` (all 1; the default) or ``order`` (``m, m-1, .., 1``: the very next
    item highest). Binary by default because the order inside the next few items carries
    little signal: MovieLens logs many ratings in the same second, and ties are broken by
    item id. Users with fewer than ``2m + 1`` interactions are skipped and counted; so is a
    user whose valid or test targets share a title (two identical lines, both relevant),
    so that every valid and test example has exactly ``m`` relevant candidates; a training
    window with such a repeat is skipped and counted. ``meta["target_ids"]`` lists the
    targets in order (with one target it is absent, and the files are as before).

    ``meta["history_ids"]`` holds the item ids of the titles in the query, in the same
    order (most recent last), for the id-based baselines (Popularity, SASRec, GRU4Rec).
    Only the shown window is stored, not the user's whole history: the whole one would
    make the full training split (~97k rows) quadratic in the history length on disk.

Determinism: every example draws from its own generator
``numpy.random.default_rng([seed, user_index, position])`` (LLaRA rows:
``[seed, split_index, row_index]``), so an example does not change when others are
dropped (``max_train_per_user``, ``max_examples``) and the output is byte-identical for a
seed.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from fgrpo.data.common import SPLITS, bump, subsample_indices
from fgrpo.data.lastfm import PoolRow
from fgrpo.data.movielens import Interaction, LlaraRow, RecData, id_sort_key
from fgrpo.data.schema import Candidate, DataError, Example

HISTORY_SEP = "\n"
MIN_INTERACTIONS = 3  # one target: a valid and a test target, each after a history item
TargetGrades = Literal["binary", "order"]


class _Catalogue:
    """Items in a fixed order, with the title -> items map used to exclude look-alikes."""

    def __init__(self, titles: dict[str, str]) -> None:
        self.titles = titles
        self.items = sorted(titles, key=id_sort_key)
        self.index = {item: i for i, item in enumerate(self.items)}
        self.by_title: dict[str, list[int]] = {}
        for i, item in enumerate(self.items):
            self.by_title.setdefault(titles[item], []).append(i)

    def excluded(self, history: list[str]) -> set[int]:
        """Indices of the history's items and of every item sharing a title with one."""
        out: set[int] = set()
        for title in {self.titles[h] for h in history}:
            out.update(self.by_title[title])
        return out


def _sample_negatives(rng: np.random.Generator, n: int, excluded: set[int], k: int) -> list[int]:
    """``k`` distinct indices from ``range(n)`` minus ``excluded``, uniformly (rejection)."""
    chosen: list[int] = []
    seen = set(excluded)
    while len(chosen) < k:
        for d in rng.integers(0, n, size=2 * (k - len(chosen)) + 8).tolist():
            if d not in seen:
                seen.add(d)
                chosen.append(d)
                if len(chosen) == k:
                    break
    return chosen


def _make_example(
    ex_id: str,
    task: str,
    history: list[str],
    targets: list[str],
    excluded: set[int],
    cat: _Catalogue,
    rng: np.random.Generator,
    pool_size: int,
    meta: dict[str, Any],
    grades: TargetGrades = "binary",
) -> Example:
    negatives = _sample_negatives(rng, len(cat.items), excluded, pool_size - len(targets))
    pool = targets + [cat.items[i] for i in negatives]
    order = rng.permutation(len(pool)).tolist()
    m = len(targets)
    return Example(
        id=ex_id,
        query=HISTORY_SEP.join(cat.titles[h] for h in history),
        candidates=[Candidate(pool[k], cat.titles[pool[k]]) for k in order],
        relevance={t: (m - i if grades == "order" else 1) for i, t in enumerate(targets)},
        task=task,
        meta=meta,
    )


def _check_sizes(pool_size: int, history_len: int, num_targets: int = 1) -> None:
    if num_targets < 1:
        raise ValueError(f"num_targets must be >= 1, got {num_targets}")
    if pool_size < num_targets + 1:
        raise ValueError(f"pool_size must be >= {num_targets + 1} (num_targets + 1), got {pool_size}")
    if history_len < 1:
        raise ValueError(f"history_len must be >= 1, got {history_len}")


def _distinct_titles(cat: _Catalogue, items: list[str]) -> bool:
    return len({cat.titles[i] for i in items}) == len(items)


def build_sequential(
    data: RecData,
    *,
    task: str = "movies",
    seed: int = 0,
    pool_size: int = 20,
    history_len: int = 10,
    max_train_per_user: int | None = None,
    max_examples: int | None = None,
    skip_invalid: bool = False,
    stats: dict[str, int] | None = None,
    num_targets: int = 1,
    target_grades: TargetGrades = "binary",
) -> dict[str, list[Example]]:
    """Leave-one-out next-item examples ``{"train", "valid", "test"}`` (see module doc);
    ``num_targets > 1``: the next ``num_targets`` items are the relevant set, graded by
    ``target_grades``.

    ``max_train_per_user`` keeps each user's most recent training positions;
    ``max_examples`` keeps a seeded subset of each split (file order preserved).
    """
    _check_sizes(pool_size, history_len, num_targets)
    if target_grades not in ("binary", "order"):
        raise ValueError(f"target_grades must be 'binary' or 'order', got {target_grades!r}")
    m = num_targets
    cat = _Catalogue(data.titles)
    by_user: dict[str, list[Interaction]] = {}
    for it in data.interactions:
        by_user.setdefault(it.user, []).append(it)
    users = sorted(by_user, key=id_sort_key)
    # slots: (user_index, position, split); cheap to list, materialized after subsampling
    slots: dict[str, list[tuple[int, int]]] = {s: [] for s in SPLITS}
    seqs: list[list[str]] = []
    excluded: list[set[int]] = []
    for u, user in enumerate(users):
        events = sorted(by_user[user], key=lambda e: (e.timestamp, id_sort_key(e.item)))
        seq = [e.item for e in events]
        seqs.append(seq)
        excl = cat.excluded(seq)
        excluded.append(excl)
        n = len(seq)
        if n < 2 * m + 1:  # m = 1: MIN_INTERACTIONS
            bump(stats, "skipped_users_too_short")
            continue
        if m > 1 and not (_distinct_titles(cat, seq[n - m :]) and _distinct_titles(cat, seq[n - 2 * m : n - m])):
            bump(stats, "skipped_users_repeated_eval_targets")
            continue
        if len(cat.items) - len(excl) < pool_size - m:
            msg = (
                f"{data.items_file}: field 'pool_size': only {len(cat.items) - len(excl)} items "
                f"lie outside the history of user '{user}' ({data.interactions_file}), "
                f"pool_size {pool_size} needs {pool_size - m} negatives"
            )
            if not skip_invalid:
                raise DataError(msg)
            bump(stats, "skipped_users_too_few_negatives")
            continue
        train_positions = list(range(1, n - 3 * m + 1))  # m = 1: 1..n-3
        if m > 1:
            kept = [t for t in train_positions if _distinct_titles(cat, seq[t : t + m])]
            if len(kept) < len(train_positions):
                bump(stats, "skipped_train_windows_repeated_targets", len(train_positions) - len(kept))
            train_positions = kept
        if max_train_per_user is not None:  # the most recent ones
            train_positions = train_positions[::-1][:max_train_per_user][::-1]
        slots["train"].extend((u, t) for t in train_positions)
        slots["valid"].append((u, n - 2 * m))
        slots["test"].append((u, n - m))
    out: dict[str, list[Example]] = {}
    for s_idx, split in enumerate(SPLITS):
        keep = subsample_indices(len(slots[split]), max_examples, seed, s_idx)
        examples = []
        for j in keep:
            u, t = slots[split][j]
            seq = seqs[u]
            rng = np.random.default_rng([seed, u, t])
            history = seq[max(0, t - history_len) : t]
            meta: dict[str, Any] = {"user": users[u], "position": t, "history_ids": list(history)}
            if m > 1:
                meta["target_ids"] = seq[t : t + m]
            examples.append(
                _make_example(
                    f"u{users[u]}-{t}", task, history, seq[t : t + m], excluded[u], cat, rng, pool_size,
                    meta, target_grades,
                )
            )
        out[split] = examples
    return out


def _llara_meta(row: LlaraRow, j: int, history: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"row": j}
    if row.user is not None:
        meta.update(user=row.user, position=row.position)
    meta["history_ids"] = list(history)
    return meta


def build_llara(
    rows: dict[str, list[LlaraRow]],
    titles: dict[str, str],
    *,
    task: str,
    seed: int = 0,
    pool_size: int = 20,
    history_len: int = 10,
    max_examples: int | None = None,
    skip_invalid: bool = False,
    stats: dict[str, int] | None = None,
) -> dict[str, list[Example]]:
    """Examples from LLaRA's own splits; negatives avoid the row's history and target and
    the user's other items the row knows (``row.seen``)."""
    _check_sizes(pool_size, history_len)
    cat = _Catalogue(titles)
    out: dict[str, list[Example]] = {}
    for s_idx, split in enumerate(SPLITS):
        examples = []
        for j in subsample_indices(len(rows.get(split, [])), max_examples, seed, s_idx):
            row = rows[split][j]
            excl = cat.excluded([*row.seq, row.next, *row.seen])
            if len(cat.items) - len(excl) < pool_size - 1:
                msg = (
                    f"{row.where}: field 'seq': only {len(cat.items) - len(excl)} items lie "
                    f"outside the row's history, pool_size {pool_size} needs {pool_size - 1}"
                )
                if not skip_invalid:
                    raise DataError(msg)
                bump(stats, "skipped_rows_too_few_negatives")
                continue
            rng = np.random.default_rng([seed, s_idx, j])
            history = row.seq[-history_len:]
            examples.append(
                _make_example(
                    f"{split}-{j}",
                    task,
                    history,
                    [row.next],
                    excl,
                    cat,
                    rng,
                    pool_size,
                    _llara_meta(row, j, history),
                )
            )
        out[split] = examples
    return out


def build_fixed_pools(
    rows: list[PoolRow],
    titles: dict[str, str],
    *,
    task: str,
    split: str,
    seed: int = 0,
    history_len: int = 10,
    max_examples: int | None = None,
) -> list[Example]:
    """Examples of pools given with the data (S-DPO's), candidates in their given order:
    nothing is drawn, so papers that use the same pools compare number for number."""
    if history_len < 1:
        raise ValueError(f"history_len must be >= 1, got {history_len}")
    examples = []
    for j in subsample_indices(len(rows), max_examples, seed, SPLITS.index(split)):
        row = rows[j]
        history = row.history[-history_len:]
        meta = {"row": j, "user": row.user, "position": row.position, "history_ids": history}
        examples.append(
            Example(
                id=f"{split}-{j}",
                query=HISTORY_SEP.join(titles[h] for h in history),
                candidates=[Candidate(c, titles[c]) for c in row.candidates],
                relevance={row.target: 1},
                task=task,
                meta=meta,
            )
        )
    return examples
