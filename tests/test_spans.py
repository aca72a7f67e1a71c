"""Token-level phase boundaries: every completion token in exactly one phase, boundary exact.

Two tokenizers: the tiny word-level one (its decoder joins tokens with spaces and drops
the first one's) and, when the converted SmolLM2 folder is already in the cache,
SmolLM2's byte-level BPE (tags split over several tokens, ``><`` straddling the phase
boundary, multi-byte characters split across tokens). The fast path (piece table +
cumulative offsets) must agree with the binary search over prefix decodes, and both
with the rule read off the decoded prefixes: the slate phase ends with the token that
completes the first ``</SLATE>``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fgrpo.format.completion import (
    RANK_CLOSE,
    RANK_OPEN,
    SLATE_CLOSE,
    SLATE_OPEN,
    parse_completion,
    render_completion,
)
from fgrpo.format.spans import (
    PieceTable,
    char_offsets,
    decode_completions,
    phase_masks,
    slate_token_count,
    slate_token_count_by_search,
    slate_token_counts,
)

SETTINGS = settings(derandomize=True, max_examples=150, deadline=None, database=None)
N = 64  # candidates the parser accepts: the tiny tokenizer knows [1]..[64]


@pytest.fixture(scope="module", params=["tiny", "smollm2"])
def tok(request):
    return request.getfixturevalue("tiny_tok" if request.param == "tiny" else "bpe_tok")


def decode(tok, ids: list[int]) -> str:
    return tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def encode(tok, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False)


def check_spans(tok, batch: list[list[int]]) -> list[int]:
    """All the span properties for a batch of completions; returns the slate token counts."""
    texts = decode_completions(tok, batch)
    ends = [parse_completion(t, N, 10, 5).slate_end for t in texts]
    counts = slate_token_counts(tok, batch, texts, ends)
    for ids, text, end, c in zip(batch, texts, ends, counts, strict=True):
        assert c == slate_token_count_by_search(tok, ids, end), (ids, text)
        if end is None:
            assert c == len(ids)
        else:  # exact: the slate phase ends with the token that completes the first </SLATE>
            assert SLATE_CLOSE in decode(tok, ids[:c]), (ids, text, c)
            assert SLATE_CLOSE not in decode(tok, ids[: c - 1]), (ids, text, c)
    lengths = torch.tensor([len(ids) for ids in batch])
    slate_counts = torch.tensor(counts)
    max_len = int(lengths.max()) + 3  # extra padding columns
    slate, rank = phase_masks(slate_counts, lengths, max_len)
    assert slate.shape == rank.shape == (len(batch), max_len)
    assert torch.equal(slate.sum(1) + rank.sum(1), lengths)  # completion tokens covered exactly
    assert not (slate & rank).any()  # disjoint
    pad = torch.arange(max_len).unsqueeze(0) >= lengths.unsqueeze(1)
    assert not (slate & pad).any() and not (rank & pad).any()  # padding in neither
    assert torch.equal(slate.sum(1), slate_counts)  # the slate is a prefix...
    assert not (slate[:, 1:] & ~slate[:, :-1]).any()  # ...with no holes
    return counts


def check_fast_vs_search(tok, ids: list[int]) -> bool:
    """The offset path agrees with the binary search when it applies; returns whether it did."""
    text = decode(tok, ids)
    end = parse_completion(text, N, 10, 5).slate_end
    offsets = char_offsets(PieceTable.for_tokenizer(tok), ids, text) if ids else None
    if offsets is None:
        return False
    starts, stops = offsets[:, 0], offsets[:, 1]
    assert starts[0] == 0 and stops[-1] == len(text)
    assert np.array_equal(starts[1:], stops[:-1]) and (stops >= starts).all()
    assert slate_token_count(offsets, end) == slate_token_count_by_search(tok, ids, end), (
        ids,
        text,
    )
    return True


# ----------------------------------------------------------------------------- hand cases


def test_tiny_hand_case(tiny_tok) -> None:
    ids = encode(tiny_tok, render_completion([4, 11, 2], [11, 4])) + [tiny_tok.eos_token_id]
    # <SLATE> [4] [11] [2] </SLATE> | <RANK> [11] > [4] </RANK> <eos>
    assert len(ids) == 11
    assert check_spans(tiny_tok, [ids]) == [5]
    # no </SLATE>: everything is slate phase; only </SLATE>: one slate token, EOS to the rank
    assert check_spans(tiny_tok, [ids[:4], ids[4:5] + [tiny_tok.eos_token_id], []]) == [4, 1, 0]


def test_bpe_boundary_token_straddles_both_tags(bpe_tok) -> None:
    text = render_completion([4, 11, 2], [11, 4])
    ids = encode(bpe_tok, text) + [bpe_tok.eos_token_id]
    pieces = bpe_tok.convert_ids_to_tokens(ids)
    # '</' 'SL' 'ATE' '><' 'RAN' 'K' '>': the '><' ends </SLATE> and opens <RANK>
    straddle = pieces.index("><")
    assert pieces[straddle - 3 : straddle + 3] == ["</", "SL", "ATE", "><", "RAN", "K"]
    assert check_spans(bpe_tok, [ids]) == [straddle + 1]
    assert check_fast_vs_search(bpe_tok, ids)  # plain ASCII: the offset path applies


def test_bpe_multibyte_before_boundary_uses_the_fallback(bpe_tok) -> None:
    text = SLATE_OPEN + "[1]🙂 [2]é" + SLATE_CLOSE + RANK_OPEN + "[2]" + RANK_CLOSE
    ids = encode(bpe_tok, text)
    assert decode(bpe_tok, ids) == text
    table = PieceTable.for_tokenizer(bpe_tok)
    assert char_offsets(table, ids, text) is None  # the emoji's two tokens decode to '�' alone
    n_slate = len(encode(bpe_tok, SLATE_OPEN + "[1]🙂 [2]é</SLATE>"))
    assert check_spans(bpe_tok, [ids]) == [n_slate]


def test_piece_table_is_cached_per_tokenizer(tok) -> None:
    assert PieceTable.for_tokenizer(tok) is PieceTable.for_tokenizer(tok)
    table = PieceTable.for_tokenizer(tok)
    assert len(table.pieces) == len(tok)
    assert all(table.pieces[i] == "" for i in tok.all_special_ids)


# ----------------------------------------------------------------------------- generated cases

SPACE = st.sampled_from(["", " ", "  ", "\n", " \n"])


@st.composite
def completion_texts(draw: st.DrawFn) -> str:
    """Rendered completions with random spacing, sometimes malformed."""
    slate = draw(st.lists(st.integers(1, N), min_size=0, max_size=10, unique=True))
    ranking = draw(st.permutations(slate))[: draw(st.integers(0, 5))]
    sep = draw(st.sampled_from([" ", ", ", "\n", ""]))
    rsep = draw(st.sampled_from([" > ", ">", ", "]))
    # fmt: off
    parts = [
        draw(SPACE), SLATE_OPEN, draw(SPACE), sep.join(f"[{k}]" for k in slate), draw(SPACE), SLATE_CLOSE,
        draw(SPACE), RANK_OPEN, draw(SPACE), rsep.join(f"[{k}]" for k in ranking), draw(SPACE), RANK_CLOSE,
    ]
    # fmt: on
    mutation = draw(st.sampled_from(["none", "none", "drop", "dup", "junk"]))
    if mutation == "drop":  # lose one piece (a tag, the items, ...)
        del parts[draw(st.integers(0, len(parts) - 1))]
    elif mutation == "dup":
        i = draw(st.integers(0, len(parts) - 1))
        parts.insert(i, parts[i])
    elif mutation == "junk":
        parts.insert(
            draw(st.integers(0, len(parts))),
            draw(st.sampled_from([" answer ", " : ", "**", " > ", "x"])),
        )
    return "".join(parts)


@SETTINGS
@given(
    texts=st.lists(completion_texts(), min_size=1, max_size=4),
    eos=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_tiny_rendered_completions(tiny_tok, texts: list[str], eos: list[bool]) -> None:
    batch = [
        encode(tiny_tok, t) + ([tiny_tok.eos_token_id] if e else [])
        for t, e in zip(texts, eos, strict=False)
    ]
    check_spans(tiny_tok, batch)
    for ids in batch:
        check_fast_vs_search(tiny_tok, ids)


@SETTINGS
@given(ids=st.lists(st.integers(0, 120), max_size=30), where=st.integers(0, 30), tag=st.booleans())
def test_tiny_random_token_ids(tiny_tok, ids: list[int], where: int, tag: bool) -> None:
    assert len(tiny_tok) == 121
    if tag:
        ids = ids[:where] + encode(tiny_tok, SLATE_CLOSE) + ids[where:]
    check_spans(tiny_tok, [ids])
    assert check_fast_vs_search(tiny_tok, ids) or not ids


def _byte_ids(tok, text: str) -> list[int]:
    """``text`` as one token per byte (byte-level BPE): tags and characters split apart."""
    byte_chars = "".join(tok.convert_ids_to_tokens(encode(tok, text)))
    return tok.convert_tokens_to_ids(list(byte_chars))


@SETTINGS
@given(
    text=completion_texts(),
    extra=st.lists(
        st.tuples(st.integers(0, 200), st.sampled_from(["é", "🙂", "日本語", "ü", "—", " "])),
        max_size=3,
    ),
    cuts=st.lists(st.integers(1, 200), max_size=8),
    byte_chunks=st.lists(st.booleans(), min_size=9, max_size=9),
    eos=st.booleans(),
)
def test_bpe_split_tags_and_multibyte(bpe_tok, text, extra, cuts, byte_chunks, eos) -> None:
    for pos, s in extra:
        pos = min(pos, len(text))
        text = text[:pos] + s + text[pos:]
    bounds = [0, *sorted({c for c in cuts if c < len(text)}), len(text)]
    ids: list[int] = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        chunk = text[a:b]  # encoded on its own: a non-canonical tokenization, tags cut anywhere
        ids += _byte_ids(bpe_tok, chunk) if byte_chunks[i] else encode(bpe_tok, chunk)
    if eos:
        ids.append(bpe_tok.eos_token_id)
    assert decode(bpe_tok, ids) == text
    check_spans(bpe_tok, [ids])
    check_fast_vs_search(bpe_tok, ids)


@pytest.fixture(scope="module")
def bpe_interesting_ids(bpe_tok) -> list[int]:
    ids = set(_byte_ids(bpe_tok, "é🙂日本語ü—<>/") + encode(bpe_tok, "é🙂日本語ü</SLATE><RANK> >"))
    return sorted(ids | {0, 1, 2, bpe_tok.eos_token_id})


@SETTINGS
@given(data=st.data(), where=st.integers(0, 24), tag=st.booleans())
def test_bpe_random_token_ids(bpe_tok, bpe_interesting_ids, data, where: int, tag: bool) -> None:
    vocab = st.one_of(st.integers(0, len(bpe_tok) - 1), st.sampled_from(bpe_interesting_ids))
    ids = data.draw(st.lists(vocab, max_size=24))
    if tag:
        ids = ids[:where] + encode(bpe_tok, SLATE_CLOSE) + ids[where:]
    check_spans(bpe_tok, [ids])
    check_fast_vs_search(bpe_tok, ids)


def test_batch_of_mixed_completions(tok) -> None:
    """One padded batch: clean, malformed, EOS-terminated, empty and tag-free rows together."""
    eos = tok.eos_token_id
    texts = [
        render_completion([3, 1, 2], [2, 1]),
        render_completion([5], [5]) + " trailing words",
        SLATE_OPEN + "[1] [2]",  # no </SLATE>
        SLATE_CLOSE + SLATE_CLOSE + RANK_OPEN,
        "answer : x",
    ]
    batch = [encode(tok, t) + [eos] for t in texts] + [[], [eos]]
    counts = check_spans(tok, batch)
    assert counts[2] == len(batch[2])  # all slate phase, EOS included
    assert counts[4] == len(batch[4]) and counts[5] == 0 and counts[6] == 1
    # EOS is rank phase
    assert all(c < len(ids) for c, ids in zip(counts[:2], batch[:2], strict=True))
