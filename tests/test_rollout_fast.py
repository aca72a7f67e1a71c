"""The rollout engine's fast paths equal the plain ones.

- :class:`fgrpo.format.items.ItemTracker` (the item-token constraint as tensors, advanced
  one token per step) allows exactly what ``ItemConstraint.allowed`` allows after every
  prefix of random walks, in all three phases, through row drops;
- ``can_complete`` (which tokens can finish the stop string) on hand-worked pieces, and it
  never misses a token after which the stop string appears;
- ``generate`` with both (the default) gives the same completions and stop flags as the
  plain path it replaced (the constraint's ``allowed`` on every row, the tail decoded
  after every token holding ``>``), on a seeded id-tiny model, sampled and constrained.
  The model's forward is untouched and training reads only the tokens, so log-probs and
  gradients are those of the same completions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fgrpo.data.schema import Candidate, Example
from fgrpo.format.completion import STOP_STRING
from fgrpo.format.items import ItemConstraint
from fgrpo.format.prompts import encode_prompt
from fgrpo.models.idtiny import build_id_tiny, build_item_tokenizer
from fgrpo.rollout import engine

torch.set_num_threads(1)
N_ITEMS = 30


@pytest.fixture(scope="module")
def tok():
    return build_item_tokenizer([str(i) for i in range(1, N_ITEMS + 1)])


def _examples(n: int, pool: int, seed: int) -> list[Example]:
    rng = np.random.default_rng(seed)
    out = []
    for e in range(n):
        ids = rng.choice(np.arange(1, N_ITEMS + 1), size=pool, replace=False)
        cands = [Candidate(str(i), f"m{i}") for i in ids]
        hist = [str(i) for i in rng.choice(np.arange(1, N_ITEMS + 1), size=4)]
        out.append(Example(f"u{e}", "q", cands, {str(ids[0]): 1}, task="movies", meta={"history_ids": hist}))
    return out


@pytest.mark.parametrize("phase", ["both", "slate", "rank"])
def test_tracker_equals_allowed_on_random_walks(tok, phase: str) -> None:
    examples = _examples(3, 6, seed=1)
    slates = [[2, 5, 1], [4], [6, 3]] if phase == "rank" else None
    con = ItemConstraint(tok, examples, max_slate=4, max_rank=3, phase=phase, slates=slates)
    rows = 24
    prompt_of = [r % 3 for r in range(rows)]
    tracker = con.tracker(prompt_of, len(tok))
    rng = np.random.default_rng(0)
    done: list[list[int]] = [[] for _ in range(rows)]
    live = list(range(rows))  # original row of each tracker row
    checked = 0
    while live:
        got = tracker.allowed()  # [b, V]
        want = con.allowed([done[r] for r in live], [prompt_of[r] for r in live], len(tok))
        assert torch.equal(got, want)
        checked += len(live)
        nxt = [int(rng.choice(want[i].nonzero().flatten().numpy())) for i in range(len(live))]
        tracker.advance(torch.tensor(nxt))
        for r, t in zip(live, nxt, strict=True):
            done[r].append(t)
        # rows leave at EOS, and a few more at random (the engine drops rows mid-way too)
        keep = [i for i, t in enumerate(nxt) if t != tok.eos_token_id and rng.random() > 0.05]
        tracker.select(torch.tensor(keep, dtype=torch.long))
        live = [live[i] for i in keep]
    assert checked > 80
    assert any(len(d) >= (4 if phase != "both" else 9) for d in done)  # walks went past the slate's first items


def test_can_complete_hand_worked() -> None:
    pieces = [" </RANK>", " >", "K>", ">", "</", "<RANK>", "ANK", "x</RANK>y", ""]
    assert engine.can_complete(pieces, "</RANK>") == [True, False, True, True, False, False, False, True, False]


def test_can_complete_never_misses_a_stop() -> None:
    """On random sequences over pieces of "</RANK>", the stop string never newly appears
    after a token that can_complete rules out."""
    pieces = ["<", "/", "R", "A", "N", "K", ">", "</", "RANK", "K>", " >", "ANK>", " ", "<R"]
    flags = engine.can_complete(pieces, STOP_STRING)
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(3000):
        text = ""
        for i in rng.integers(0, len(pieces), size=12):
            before = STOP_STRING in text
            text += pieces[i]
            if STOP_STRING in text and not before:
                hits += 1
                assert flags[i], (text, pieces[i])
                break
    assert hits > 20


def _model(vocab: int):
    m = build_id_tiny(vocab, hidden_size=32, num_layers=2, num_heads=2, seed=0).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # larger seeded weights: outputs depend on the whole prefix
        for p in m.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return m


def test_generate_fast_equals_plain_path(tok, monkeypatch) -> None:
    examples = _examples(4, 8, seed=2)
    model = _model(len(tok))
    prompts = [encode_prompt(tok, ex, 5, 3) for ex in examples]
    prompts[1] = prompts[1][:-2]  # different prompt lengths: left padding

    def run(fast: bool) -> engine.Rollouts:
        gens = [torch.Generator().manual_seed(50 + i) for i in range(len(prompts))]
        con = ItemConstraint(tok, examples, max_slate=5, max_rank=3)
        return engine.generate(model, tok, prompts, 6, 16, 1.0, 1.0, gens, constraint=con, fast=fast)

    new = run(True)
    with monkeypatch.context() as m:  # the plain path: the tail decoded after every piece holding ">"
        m.setattr(engine, "can_complete", lambda pieces, stop: [">" in p for p in pieces])
        old = run(False)
    assert new.completions == old.completions
    assert new.stopped == old.stopped
    assert sum(new.stopped) > 12 and len({tuple(c) for c in new.completions}) > 12  # really sampled, mostly finished
