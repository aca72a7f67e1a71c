"""Item-token references: prompts and completions of models with one token per item.

The ``id-tiny`` preset (:mod:`fgrpo.models.idtiny`) is a generative-recommender-style model:
its vocabulary holds one token per item id, written ``[i<id>]`` (``[i242]``), plus the
format tags. Its prompt is the pool then the user's history, both as item tokens::

    <POOL> [i50] [i181] ... [i7] <HIST> [i242] [i302] ... [i51]

(pool first, history last: the prompt then ends the way a next-item pretraining sequence
does, so what pretraining taught at the last history item carries over), and its
completion names candidates by their item token instead of their number::

    <SLATE>[i181] [i7]</SLATE><RANK>[i7] > [i181]</RANK>

Such a model is recognised by its tokenizer knowing :data:`POOL_TOKEN`; for every other
tokenizer :func:`candidate_labels` returns None and nothing changes. The parser
(:func:`fgrpo.format.completion.parse_completion` with ``labels=``) maps item tokens back to
candidate numbers, so rewards, metrics and phase masks work on numbers as before.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import TYPE_CHECKING, Any

from fgrpo.data.schema import Example

if TYPE_CHECKING:  # torch is imported where it is used: the text side of the format runs without it
    import torch

POOL_TOKEN = "<POOL>"
HIST_TOKEN = "<HIST>"
PROMPT_TOKENS = (POOL_TOKEN, HIST_TOKEN)

_MODE_CACHE: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def item_token(item_id: str) -> str:
    """The token text of an item id: ``[i<id>]``."""
    if not item_id or any(c.isspace() or c in "[]<>" for c in item_id):
        raise ValueError(f"item id {item_id!r} cannot be an item token (empty, or holds whitespace, brackets or <>)")
    return f"[i{item_id}]"


def uses_item_tokens(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` belongs to an item-token model (it knows ``<POOL>`` as a token)."""
    try:
        return _MODE_CACHE[tokenizer]
    except (KeyError, TypeError):
        pass
    mode = POOL_TOKEN in tokenizer.get_added_vocab() if hasattr(tokenizer, "get_added_vocab") else False
    with contextlib.suppress(TypeError):  # not weak-referenceable: recomputed next time
        _MODE_CACHE[tokenizer] = mode
    return mode


def candidate_labels(tokenizer: Any, example: Example) -> list[str] | None:
    """Item token of each candidate (``labels[k - 1]`` is candidate ``k``), or None when the
    tokenizer refers to candidates by number."""
    if not uses_item_tokens(tokenizer):
        return None
    return [item_token(c.id) for c in example.candidates]


def history_ids(example: Example) -> list[str]:
    """The user's history item ids (``meta.history_ids``, most recent last)."""
    ids = example.meta.get("history_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str | int) for i in ids):
        raise ValueError(
            f"example '{example.id}': field 'meta.history_ids' (a list of item ids) is required by "
            "item-token models; datasets made by `fgrpo prepare` for ml100k/ml1m/llara have it"
        )
    return [str(i) for i in ids]


def check_known_items(tokenizer: Any, example: Example) -> None:
    """ValueError naming the items of ``example`` (pool or history) that have no token in
    ``tokenizer``: they would be read as ``<unk>``, and a pool item without a token can never
    be answered, so scores on a dataset outside the model's catalogue would only look bad."""
    tokens = [item_token(c.id) for c in example.candidates] + [item_token(i) for i in history_ids(example)]
    unknown = [t for t, i in zip(tokens, tokenizer.convert_tokens_to_ids(tokens), strict=True) if i == tokenizer.unk_token_id]
    if unknown:
        raise ValueError(
            f"example '{example.id}': item(s) {' '.join(dict.fromkeys(unknown))} are not in the model's vocabulary "
            "(an item-token model knows the items of the dataset folder it was built from: docs/id-tiny.md)"
        )


def item_prompt(example: Example, slate: list[int] | None = None) -> str:
    """The prompt of an item-token model: ``<POOL> pool items <HIST> history items``.
    ``slate`` (a two-step ranker's prompt): only those candidates, in pool order, so that no
    position gives the selector's ranking away (as for the text prompts)."""
    shown = range(1, example.num_candidates + 1) if slate is None else sorted(set(slate))
    pool = " ".join(item_token(example.candidates[k - 1].id) for k in shown)
    history = " ".join(item_token(i) for i in history_ids(example))
    return f"{POOL_TOKEN} {pool} {HIST_TOKEN} {history}".rstrip()


class ItemConstraint:
    """Constrained decoding for item-token models: the format as a token-level state machine.

    With one token per item and per tag, a valid completion is ``<SLATE>``, 1..``max_slate``
    distinct pool items, ``</SLATE>``, ``<RANK>``, 1..``max_rank`` distinct slate items
    separated by ``>``, ``</RANK>``, so the allowed next tokens follow from the token ids
    alone (no text parsing). Same interface as
    :class:`fgrpo.format.constrained.FormatConstraint`, phases included: ``phase="slate"``
    allows ``<SLATE>…</SLATE>`` then EOS (a two-step selector), ``phase="rank"`` allows
    ``<RANK>…</RANK>`` over the row's given slate (``slates``: candidate numbers) then EOS.
    """

    def __init__(
        self, tokenizer: Any, examples: list[Example], max_slate: int, max_rank: int,
        phase: str = "both", slates: list[list[int]] | None = None,
    ) -> None:  # fmt: skip
        from fgrpo.format.completion import RANK_CLOSE, RANK_OPEN, SLATE_CLOSE, SLATE_OPEN

        if phase not in ("both", "slate", "rank"):
            raise ValueError(f"phase must be 'both', 'slate' or 'rank', got {phase!r}")
        if (phase == "rank") != (slates is not None) or (slates is not None and len(slates) != len(examples)):
            raise ValueError("slates are given exactly for phase 'rank', one per example")
        ids = tokenizer.convert_tokens_to_ids
        self.s_open, self.s_close, self.r_open, self.r_close, self.gt = ids([SLATE_OPEN, SLATE_CLOSE, RANK_OPEN, RANK_CLOSE, ">"])
        self.eos = tokenizer.eos_token_id
        self.pools = [ids([item_token(c.id) for c in ex.candidates]) for ex in examples]
        self.max_slate, self.max_rank, self.phase = max_slate, max_rank, phase
        # phase "rank": the slate as an already written prefix, so one state machine serves all phases
        self.prefixes = [[] for _ in examples] if slates is None else [
            [self.s_open, *(pool[k - 1] for k in sl), self.s_close] for pool, sl in zip(self.pools, slates, strict=True)
        ]  # fmt: skip

    def next_tokens(self, done: list[int], pool: list[int]) -> list[int]:
        """Token ids that keep ``done`` a valid prefix."""
        if not done:
            return [self.s_open]
        if self.s_close not in done:
            slate = done[1:]
            out = [t for t in pool if t not in slate] if len(slate) < self.max_slate else []
            return out + ([self.s_close] if slate else [])
        if self.phase == "slate":
            return [self.eos]
        cut = done.index(self.s_close)
        slate, rest = done[1:cut], done[cut + 1 :]
        if not rest:
            return [self.r_open]
        if rest[-1] == self.r_close:
            return [self.eos]
        ranked = [t for t in rest[1:] if t != self.gt]
        if rest[-1] in (self.r_open, self.gt):
            return [t for t in slate if t not in ranked]
        more = len(ranked) < min(self.max_rank, len(slate))
        return ([self.gt] if more else []) + [self.r_close]

    def allowed(self, completions: list[list[int]], prompt_of_row: list[int], vocab_size: int) -> torch.Tensor:
        """[rows, vocab] bool: the tokens :meth:`next_tokens` allows after each row's completion."""
        import torch

        mask = torch.zeros((len(completions), vocab_size), dtype=torch.bool)
        for r, (done, p) in enumerate(zip(completions, prompt_of_row, strict=True)):
            mask[r, self.next_tokens(self.prefixes[p] + list(done), self.pools[p])] = True
        return mask

    def tracker(self, prompt_of_row: list[int], vocab_size: int, device: Any = "cpu") -> ItemTracker:
        """The same state machine over a batch of rows as tensors, advanced one token per
        step (what :func:`fgrpo.rollout.engine.generate` uses: :meth:`allowed` re-reads every
        row's whole completion in Python at each step)."""
        return ItemTracker(self, prompt_of_row, vocab_size, device)


# stages of ItemTracker: what the last token was
_START, _SLATE, _SLATE_DONE, _RANK_ITEM, _RANKED, _DONE = range(6)


class ItemTracker:
    """:meth:`ItemConstraint.next_tokens` for all rows at once, as tensors.

    Per row [b]: the stage (start; in the slate; after ``</SLATE>``; after ``<RANK>`` or
    ``>``; after a ranked item; after ``</RANK>``), the slate and ranking sizes, and [b, V]
    masks of the row's pool, its slate items and its ranked items. :meth:`allowed` equals
    ``ItemConstraint.allowed`` on every row's completion so far (tests/test_decode.py).
    """

    def __init__(self, c: ItemConstraint, prompt_of_row: list[int], vocab_size: int, device: Any) -> None:
        import torch

        self.c = c
        b = len(prompt_of_row)
        self.pool = torch.zeros((b, vocab_size), dtype=torch.bool)  # [b, V]
        self.slate = torch.zeros((b, vocab_size), dtype=torch.bool)  # [b, V] items in the row's slate
        for r, p in enumerate(prompt_of_row):
            self.pool[r, c.pools[p]] = True
            self.slate[r, c.prefixes[p][1:-1]] = True  # phase "rank": the given slate
        self.ranked = torch.zeros((b, vocab_size), dtype=torch.bool)  # [b, V]
        has_prefix = torch.tensor([bool(c.prefixes[p]) for p in prompt_of_row], dtype=torch.bool)
        self.stage = torch.where(has_prefix, _SLATE_DONE, _START)  # [b]
        self.n_slate = self.slate.sum(-1)  # [b]
        self.n_ranked = torch.zeros(b, dtype=torch.long)  # [b]
        specials = [c.s_open, c.s_close, c.r_open, c.r_close, c.gt, c.eos]
        self.special = torch.zeros(vocab_size, dtype=torch.bool)  # [V]
        self.special[specials] = True
        self.pool, self.slate, self.ranked = self.pool.to(device), self.slate.to(device), self.ranked.to(device)
        self.stage, self.n_slate, self.n_ranked = self.stage.to(device), self.n_slate.to(device), self.n_ranked.to(device)
        self.special = self.special.to(device)

    def allowed(self) -> torch.Tensor:
        """[b, V] bool: the tokens that keep each row's completion a valid prefix."""
        c, stage = self.c, self.stage
        slate_open = (stage == _SLATE) & (self.n_slate < c.max_slate)  # [b]
        out = (self.pool & ~self.slate & slate_open[:, None]) | (self.slate & ~self.ranked & (stage == _RANK_ITEM)[:, None])
        out[:, c.s_open] |= stage == _START
        out[:, c.s_close] |= (stage == _SLATE) & (self.n_slate > 0)
        if c.phase == "slate":
            out[:, c.eos] |= stage == _SLATE_DONE
        else:
            out[:, c.r_open] |= stage == _SLATE_DONE
            more = self.n_ranked < self.n_slate.clamp(max=c.max_rank)
            out[:, c.gt] |= (stage == _RANKED) & more
            out[:, c.r_close] |= stage == _RANKED
            out[:, c.eos] |= stage == _DONE
        return out

    def advance(self, tokens: torch.Tensor) -> None:
        """Append ``tokens`` [b] (one per row, allowed by :meth:`allowed`)."""
        import torch

        c, stage = self.c, self.stage
        rows = torch.arange(len(tokens), device=tokens.device)
        item = ~self.special[tokens]  # [b]
        to_slate = (stage == _SLATE) & item
        to_rank = (stage == _RANK_ITEM) & item
        self.slate[rows, tokens] |= to_slate
        self.ranked[rows, tokens] |= to_rank
        self.n_slate = self.n_slate + to_slate
        self.n_ranked = self.n_ranked + to_rank
        new = stage.clone()
        new[(stage == _START) & (tokens == c.s_open)] = _SLATE
        new[(stage == _SLATE) & (tokens == c.s_close)] = _SLATE_DONE
        new[(stage == _SLATE_DONE) & (tokens == c.r_open)] = _RANK_ITEM
        new[to_rank] = _RANKED
        new[(stage == _RANKED) & (tokens == c.gt)] = _RANK_ITEM
        new[(stage == _RANKED) & (tokens == c.r_close)] = _DONE
        self.stage = new

    def select(self, keep: torch.Tensor) -> None:
        """Keep only the rows ``keep`` (indices into the current batch)."""
        self.pool, self.slate, self.ranked = self.pool[keep], self.slate[keep], self.ranked[keep]
        self.stage, self.n_slate, self.n_ranked = self.stage[keep], self.n_slate[keep], self.n_ranked[keep]

