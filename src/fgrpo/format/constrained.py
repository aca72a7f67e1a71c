"""Constrained decoding: only tokens that keep the completion a valid prefix of the format.

Off by default: the paper's protocol decodes freely, and a malformed output is parsed,
penalized and counted. With ``constrained=true`` (``fgrpo eval``, ``Ranker``) every output
is valid by construction: a slate of distinct in-pool numbers (at most ``max_slate``),
then a ranking of distinct slate members (at most ``max_rank``). That is what a deployed
generative recommender does (constrained beam search over valid item ids in TIGER/P5-style
systems) and it separates "knows what to recommend" from "writes the format", which a
short supervised warm start does not yet do under greedy decoding (docs/results.md).

How: a small set of *format tokens* (every token id the tokenizer uses to write canonical
completions, e.g. ``<``, ``SL``, `` [``, ``1``, ``]``, `` >``) is allowed at all; at each
step a format token stays allowed for a row only if the row's text with it appended is
still a valid prefix (:func:`is_valid_prefix`, a character-level parser that also checks
distinctness, pool range and length limits and never paints itself into a corner).
For the two-step pipeline (fgrpo.evaluation.two_step) the same checker constrains each
step: ``phase="slate"`` accepts the slate alone, ``phase="rank"`` a ranking of the members
of a given slate (checked as the continuation of that slate's text).

Written by hand: transformers' ``prefix_allowed_tokens_fn`` only works inside
``model.generate``, and grammar libraries (outlines, xgrammar) cannot express "a number
not used yet" without compiling a grammar per prompt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from fgrpo.format.completion import (
    RANK_CLOSE,
    RANK_OPEN,
    SLATE_CLOSE,
    SLATE_OPEN,
    render_completion,
    render_slate,
)
from fgrpo.format.items import ItemConstraint, uses_item_tokens
from fgrpo.format.prompts import PHASES, Phase

if TYPE_CHECKING:
    from fgrpo.data.schema import Example


def _literal(text: str, pos: int, lit: str) -> tuple[str, int]:
    """('done', new pos) if ``lit`` is at ``pos``; ('partial', len) if the text ends inside
    it; ('no', pos) otherwise."""
    tail = text[pos : pos + len(lit)]
    if tail == lit:
        return "done", pos + len(lit)
    if lit.startswith(tail):  # tail shorter than lit: the text ended inside the literal
        return "partial", len(text)
    return "no", pos


def _gap(text: str, pos: int) -> int:
    """Skip at most one whitespace character (one, so that decoding cannot loop on spaces)."""
    return pos + 1 if pos < len(text) and text[pos].isspace() else pos


def _item(text: str, pos: int, allowed: set[int]) -> tuple[str, int, int]:
    """Parse ``[k]`` at ``pos`` with k in ``allowed``: ('done', pos, k), ('partial', ...) when
    the text ends inside a completable item, ('no', ...) otherwise."""
    if pos >= len(text) or text[pos] != "[":
        return "no", pos, 0
    end = pos + 1
    while end < len(text) and text[end].isdigit():
        end += 1
    digits = text[pos + 1 : end]
    if digits.startswith("0"):
        return "no", pos, 0
    if end == len(text):  # inside the number: some allowed k must start with these digits
        ok = any(str(k).startswith(digits) for k in allowed)
        return ("partial" if ok else "no"), end, 0
    if text[end] != "]" or not digits or int(digits) not in allowed:
        return "no", pos, 0
    return "done", end + 1, int(digits)


INVALID, VALID, INSIDE_TAG = 0, 1, 2


def is_valid_prefix(text: str, num_candidates: int, max_slate: int, max_rank: int) -> bool:
    """Whether ``text`` can still be completed into a valid completion.

    The accepted language is the canonical format with at most one whitespace character
    in each gap (before and between tags and items): ``<SLATE>[a] [b]</SLATE><RANK>[b] >
    [a]</RANK>``, slate items distinct in 1..N (1 to ``max_slate`` of them), ranking items
    distinct slate members (1 to ``max_rank``). Only whitespace may follow ``</RANK>``
    (decoding stops there, but one token can carry text past it).
    """
    return prefix_state(text, num_candidates, max_slate, max_rank) != INVALID


def prefix_state(text: str, num_candidates: int, max_slate: int, max_rank: int) -> int:
    """INVALID, VALID, or INSIDE_TAG: valid, but the text ends part-way through a tag (the
    one place where a token can be a dead end: ``<`` where only ``</SLATE>`` may follow
    and the tokenizer writes that tag as ``</`` ``SL`` ...)."""

    def literal(pos: int, lit: str) -> tuple[int | None, int]:
        state, new = _literal(text, pos, lit)
        return (None if state == "done" else (INSIDE_TAG if state == "partial" else INVALID)), new

    code, pos = literal(_gap(text, 0), SLATE_OPEN)
    if code is not None:
        return code
    slate: list[int] = []
    while True:  # slate items, then </SLATE>
        pos = _gap(text, pos)
        if pos == len(text):
            return VALID
        if slate:
            code, new = literal(pos, SLATE_CLOSE)
            if code == INSIDE_TAG:
                return code
            if code is None:
                pos = new
                break
        if len(slate) >= max_slate:
            return INVALID
        state, pos, k = _item(text, pos, set(range(1, num_candidates + 1)) - set(slate))
        if state != "done":
            return VALID if state == "partial" else INVALID
        slate.append(k)
    code, pos = literal(_gap(text, pos), RANK_OPEN)
    if code is not None:
        return code
    ranking: list[int] = []
    while True:  # ranking items separated by '>', then </RANK>
        pos = _gap(text, pos)
        if pos == len(text):
            return VALID
        if ranking:
            code, end = literal(pos, RANK_CLOSE)
            if code == INSIDE_TAG:
                return code
            if code is None:  # complete: decoding stops here; a token running past it must not
                return VALID if not text[end:].strip() else INVALID
            if text[pos] != ">":
                return INVALID
            pos = _gap(text, pos + 1)
            if pos == len(text):
                return VALID if len(ranking) < max_rank and len(ranking) < len(slate) else INVALID
        if len(ranking) >= max_rank:
            return INVALID
        state, pos, k = _item(text, pos, set(slate) - set(ranking))
        if state != "done":
            return VALID if state == "partial" else INVALID
        ranking.append(k)


def slate_prefix_state(text: str, num_candidates: int, max_slate: int) -> int:
    """:func:`prefix_state` for step 1 of the two-step pipeline, whose answer is the slate
    alone: the same language up to ``</SLATE>``, then only whitespace (decoding stops there)."""
    end = text.find(SLATE_CLOSE)
    if end < 0:
        return prefix_state(text, num_candidates, max_slate, 1)  # max_rank plays no part before </SLATE>
    end += len(SLATE_CLOSE)
    if text[end:].strip() or not prefix_state(text[:end], num_candidates, max_slate, 1):
        return INVALID
    return VALID


class FormatConstraint:
    """Per-row allowed-token masks for :func:`fgrpo.rollout.engine.generate`.

    ``phase``: ``both`` (one-pass answer), ``slate`` (step 1 of the two-step pipeline: the
    slate alone) or ``rank`` (step 2: the ranking alone, of members of ``slates[p]``, the
    slate step 1 chose for prompt p; checked as the continuation of that slate's text).
    """

    def __init__(
        self, tokenizer: Any, num_candidates: list[int], max_slate: int, max_rank: int,
        phase: Phase = "both", slates: list[list[int]] | None = None,
    ) -> None:  # fmt: skip
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        if (phase == "rank") != (slates is not None) or (slates is not None and len(slates) != len(num_candidates)):
            raise ValueError("phase 'rank' needs one slate per prompt (and only it takes slates)")
        self.tokenizer = tokenizer
        self.num_candidates = num_candidates  # per prompt
        self.max_slate, self.max_rank = max_slate, max_rank
        self.phase = phase
        # step 2 continues step 1's text
        self.prefixes = [render_slate(s) for s in slates] if slates is not None else None
        self.format_tokens = format_token_ids(tokenizer, max(num_candidates), split_phases=phase != "both")

    def state(self, text: str, prompt: int) -> int:
        """INVALID / VALID / INSIDE_TAG of a row's completion text (see :func:`prefix_state`)."""
        n = self.num_candidates[prompt]
        if self.phase == "slate":
            return slate_prefix_state(text, n, self.max_slate)
        if self.prefixes is not None:
            text = self.prefixes[prompt] + text
        return prefix_state(text, n, self.max_slate, self.max_rank)

    def allowed(self, completions: list[list[int]], prompt_of_row: list[int], vocab_size: int) -> torch.Tensor:
        """[rows, vocab] bool: tokens that keep each row's completion a valid prefix."""
        mask = torch.zeros((len(completions), vocab_size), dtype=torch.bool)
        for r, (done, p) in enumerate(zip(completions, prompt_of_row, strict=True)):
            before = self.tokenizer.decode(done, skip_special_tokens=True)
            texts = self.tokenizer.batch_decode([done + [t] for t in self.format_tokens], skip_special_tokens=True)
            added = [t[len(before) :] for t in texts]  # what each token would append here

            def state(text: str, p: int = p) -> int:
                return self.state(text, p)

            ok = []
            for t, extra in zip(self.format_tokens, added, strict=True):
                code = state(before + extra)
                # inside a tag, keep the token only if some format token can continue it
                if code == VALID or (code == INSIDE_TAG and any(state(before + extra + more) for more in added)):
                    ok.append(t)
            if not ok:  # a dead end (not seen in tests): end the row; the parser counts it invalid
                ok = [self.tokenizer.eos_token_id]
            mask[r, ok] = True
        return mask


def decoding_constraint(
    tokenizer: Any, examples: list[Example], max_slate: int, max_rank: int,
    phase: Phase = "both", slates: list[list[int]] | None = None,
) -> FormatConstraint | ItemConstraint:  # fmt: skip
    """The constraint of answers to ``examples``' prompts: one-pass (``phase="both"``), or a
    two-step selector's slate / ranker's ranking of ``slates``. An item-token model (id-tiny)
    writes one token per item and per tag, so the allowed tokens follow from the token ids
    alone (:class:`fgrpo.format.items.ItemConstraint`); any other tokenizer spells numbers
    and tags over several tokens, checked on the text."""
    if uses_item_tokens(tokenizer):
        return ItemConstraint(tokenizer, examples, max_slate, max_rank, phase=phase, slates=slates)
    return FormatConstraint(tokenizer, [ex.num_candidates for ex in examples], max_slate, max_rank, phase=phase, slates=slates)


def format_token_ids(tokenizer: Any, max_number: int, split_phases: bool = False) -> list[int]:
    """Every token id the tokenizer uses when writing canonical completions that mention
    the numbers 1..``max_number`` (in slate and ranking, first and later positions);
    ``split_phases``: also the slate and the ranking each written alone (the two-step
    answers, where a BPE tokenizer may merge ``>`` with ``<`` across ``</SLATE><RANK>``)."""
    ids: set[int] = set()
    texts = [render_completion(list(range(1, max_number + 1)), list(range(max_number, 0, -1)))]
    texts += [render_completion([k, j], [j, k]) for k in range(1, max_number + 1) for j in (1, max_number) if j != k]
    if split_phases:
        texts += [part for t in texts for part in (t[: t.index(RANK_OPEN)], t[t.index(RANK_OPEN) :])]
    for text in texts:
        ids.update(tokenizer(text, add_special_tokens=False)["input_ids"])
    return sorted(ids)


def allowed_masks(
    constraint: FormatConstraint | ItemConstraint, completions: list[list[int]], prompt_of_row: list[int], vocab_size: int
) -> torch.Tensor:
    """[rows, T, vocab] bool: at each position t of each completion, the tokens ``constraint``
    allowed after its first t tokens (T: the longest completion; positions past a row's end
    allow everything, they are masked out of every loss). The constrained policy's support,
    replayed over finished completions, so that training scores the distribution the
    rollouts were sampled from (``constrained_logprobs``) and SFT trains the softmax the
    constrained decoder reads (``constrained_loss``)."""
    t_max = max(1, max(len(c) for c in completions))
    out = torch.ones((len(completions), t_max, vocab_size), dtype=torch.bool)
    for t in range(t_max):
        rows = [r for r, c in enumerate(completions) if len(c) > t]
        if rows:
            out[rows, t] = constraint.allowed([completions[r][:t] for r in rows], [prompt_of_row[r] for r in rows], vocab_size)
    return out
