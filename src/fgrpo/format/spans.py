"""Token-level phase boundaries of a completion, from character offsets.

F-GRPO applies the slate advantage to the slate tokens and the ranking advantage to the
ranking tokens, so the boundary must be exact. The rule (ours, documented in
docs/method.md): every token that starts before the end of ``</SLATE>`` belongs to the
slate phase (the token that completes ``</SLATE>`` included, even when it also carries
the first characters of ``<RANK>``); every later token, EOS included, to the rank phase.
A completion with no ``</SLATE>`` is all slate phase.

Offsets of *generated* token ids are computed without decoding token by token: each
vocabulary entry's text piece is decoded once per tokenizer (in one batch, cached), and
a sequence's offsets are a cumulative sum over a gather into that table. Where the pieces
do not concatenate to the decoded text (a multi-byte character split across byte-level
tokens, a tokenizer whose decoder rewrites text), the boundary is found by a binary
search over prefix decodes instead: O(log T) decodes, still exact.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch

_PIECE_CACHE: weakref.WeakKeyDictionary[Any, PieceTable] = weakref.WeakKeyDictionary()


class PieceTable:
    """Text piece of every token id, as it appears inside a decoded sequence."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        vocab_size = len(tokenizer)
        special = set(tokenizer.all_special_ids)
        anchor = self._pick_anchor(tokenizer, special)
        head = tokenizer.decode([anchor], skip_special_tokens=True)
        pairs = [[anchor, i] for i in range(vocab_size)]
        texts = tokenizer.batch_decode(pairs, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        self.pieces: list[str] = [
            "" if i in special else (t[len(head) :] if t.startswith(head) else t) for i, t in enumerate(texts)
        ]
        self.lengths = np.array([len(p) for p in self.pieces], dtype=np.int64)
        self.has_gt = np.array([">" in p for p in self.pieces], dtype=bool)

    @staticmethod
    def _pick_anchor(tokenizer: Any, special: set[int]) -> int:
        for text in ("a", "x", "the", "A"):
            ids = tokenizer.encode(text, add_special_tokens=False)
            if len(ids) == 1 and ids[0] not in special:
                return ids[0]
        return next(i for i in range(len(tokenizer)) if i not in special)

    @classmethod
    def for_tokenizer(cls, tokenizer: Any) -> PieceTable:
        table = _PIECE_CACHE.get(tokenizer)
        if table is None:
            table = cls(tokenizer)
            _PIECE_CACHE[tokenizer] = table
        return table


def char_offsets(table: PieceTable, ids: list[int] | np.ndarray, text: str) -> np.ndarray | None:
    """[T, 2] (start, end) character offsets of ``ids`` in ``text`` (the decoded completion),
    or None when the piece table cannot reproduce ``text``."""
    ids = np.asarray(ids, dtype=np.int64)
    lengths = table.lengths[ids]  # [T]
    ends = np.cumsum(lengths)
    joined_len = int(ends[-1]) if len(ends) else 0
    shift = joined_len - len(text)
    if shift < 0:
        return None
    if shift > 0:
        # Decoders such as WordLevel's or Metaspace's drop the first token's leading space.
        first = next((table.pieces[i] for i in ids if table.lengths[i] > 0), "")
        if not first[:shift].isspace():
            return None
        ends = np.maximum(ends - shift, 0)
    starts = np.concatenate([[0], ends[:-1]]) if len(ends) else ends
    joined = "".join(table.pieces[i] for i in ids)[shift:]
    if joined != text:
        return None
    return np.stack([starts, ends], axis=1)


def slate_token_count(offsets: np.ndarray, slate_end: int | None) -> int:
    """Number of leading tokens in the slate phase: those starting before ``slate_end``."""
    if slate_end is None:
        return len(offsets)
    starts = offsets[:, 0]
    # a zero-length token (EOS, special) at the boundary goes to the rank phase
    return int(np.searchsorted(starts, slate_end, side="left"))


def slate_token_count_by_search(tokenizer: Any, ids: list[int], slate_end: int | None) -> int:
    """Same as :func:`slate_token_count`, by binary search over prefix decodes (fallback)."""
    if slate_end is None:
        return len(ids)
    lo, hi = 0, len(ids)  # smallest t with len(decode(ids[:t])) >= slate_end
    while lo < hi:
        mid = (lo + hi) // 2
        n = len(tokenizer.decode(ids[:mid], skip_special_tokens=True, clean_up_tokenization_spaces=False))
        if n >= slate_end:
            hi = mid
        else:
            lo = mid + 1
    return lo


def decode_completions(tokenizer: Any, completions: list[list[int]]) -> list[str]:
    return tokenizer.batch_decode(completions, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def slate_token_counts(
    tokenizer: Any, completions: list[list[int]], texts: list[str], slate_ends: list[int | None]
) -> list[int]:
    """Per completion, how many of its leading tokens belong to the slate phase."""
    table = PieceTable.for_tokenizer(tokenizer)
    out = []
    for ids, text, end in zip(completions, texts, slate_ends, strict=True):
        offsets = char_offsets(table, ids, text) if len(ids) else np.zeros((0, 2), np.int64)
        if offsets is None:
            out.append(slate_token_count_by_search(tokenizer, ids, end))
        else:
            out.append(slate_token_count(offsets, end))
    return out


def phase_masks(slate_counts: torch.Tensor, lengths: torch.Tensor, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean [B, T] masks of the slate and rank phases from per-row token counts.

    ``slate_counts`` [B]: slate tokens at the start of each completion; ``lengths`` [B]:
    completion lengths. Positions past ``lengths`` (padding) are in neither mask.
    """
    pos = torch.arange(max_len, device=lengths.device).unsqueeze(0)  # [1, T]
    valid = pos < lengths.unsqueeze(1)  # [B, T]
    slate = pos < slate_counts.unsqueeze(1)
    return slate & valid, (~slate) & valid
