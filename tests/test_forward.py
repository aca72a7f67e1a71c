"""Log-probabilities, rollouts and where the gradient goes, on a tiny seeded Llama.

- ``completion_logprobs``: the shared-prefix path (prompt once, KV cache repeated) equals
  the plain path and a naive one-sequence-at-a-time computation, in values and gradients;
- ``generate``: greedy equals naive cache-free greedy decoding; seeded sampling repeats;
  rows stop at EOS or right after ``</RANK>`` (a scripted fake model);
- the F-GRPO gradient: a phase whose reward is flat in the group gets exactly zero
  gradient on its tokens; GRPO's joint advantage reaches both phases.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from fgrpo.algorithm import core_algos as ca
from fgrpo.format.completion import STOP_STRING, parse_completion, render_completion
from fgrpo.format.spans import decode_completions, phase_masks, slate_token_counts
from fgrpo.models.tiny import build_tiny_llama
from fgrpo.rollout.engine import generate, sample_next
from fgrpo.trainer.forward import completion_logprobs

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model(tiny_tok):
    m = build_tiny_llama(len(tiny_tok), hidden_size=32, num_layers=2, seed=0).eval()
    # At its default init (std 0.02) the tiny model mostly repeats the last token whatever
    # the context, which would hide a wrong attention mask or position; larger seeded
    # weights make every output depend on the whole prefix.
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return m


def _ids(n: int, seed: int, vocab: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (n,), generator=g).tolist()  # no special tokens


def _naive_logprobs(
    model, prompt: list[int], completion: list[int], temperature: float
) -> torch.Tensor:
    ids = torch.tensor([prompt + completion])
    # the positions that predict the completion's tokens
    logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1]
    logp = torch.log_softmax(logits / temperature, dim=-1)
    return logp.gather(-1, torch.tensor(completion).unsqueeze(-1)).squeeze(-1)


def _grads(model, loss: torch.Tensor) -> list[torch.Tensor]:
    params = [p for p in model.parameters() if p.requires_grad]
    return list(torch.autograd.grad(loss, params, allow_unused=True))


@pytest.mark.parametrize(
    ("lengths", "temperature"), [((5, 1, 3, 6), 1.0), ((4, 2, 7), 0.7), ((1, 1), 1.0)]
)
def test_shared_prefix_equals_plain_and_naive(model, tiny_tok, lengths, temperature) -> None:
    vocab = len(tiny_tok)
    prompt = _ids(7, 0, vocab)
    comps = [_ids(n, 10 + i, vocab) for i, n in enumerate(lengths)]
    weights = torch.randn(len(comps), max(lengths), generator=torch.Generator().manual_seed(1))

    lp_shared, mask = completion_logprobs(
        model, prompt, comps, tiny_tok.pad_token_id, temperature, share_prefix=True
    )
    lp_plain, mask2 = completion_logprobs(
        model, prompt, comps, tiny_tok.pad_token_id, temperature, share_prefix=False
    )
    assert torch.equal(mask, mask2) and mask.sum().item() == sum(lengths)
    torch.testing.assert_close(lp_shared[mask], lp_plain[mask], rtol=0, atol=1e-5)
    for i, c in enumerate(comps):
        naive = _naive_logprobs(model, prompt, c, temperature)
        torch.testing.assert_close(lp_shared[i, : len(c)], naive, rtol=0, atol=1e-5)
    assert (lp_shared[mask] < 0).all()

    g_shared = _grads(model, (lp_shared * weights * mask).sum())
    g_plain = _grads(model, (lp_plain * weights * mask).sum())
    naive_loss = sum(
        (_naive_logprobs(model, prompt, c, temperature) * weights[i, : len(c)]).sum()
        for i, c in enumerate(comps)
    )
    g_naive = _grads(model, naive_loss)
    for a, b, c in zip(g_shared, g_plain, g_naive, strict=True):
        if c is None:
            assert a is None and b is None
            continue
        scale = c.norm().clamp(min=1e-12)
        assert (a - c).norm() / scale < 1e-5 and (b - c).norm() / scale < 1e-5
    assert any(g is not None and g.abs().sum() > 0 for g in g_naive)


# ----------------------------------------------------------------------------- generate


def _naive_greedy(model, tok, prompt: list[int], max_new: int) -> tuple[list[int], bool]:
    out: list[int] = []
    for _ in range(max_new):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + out])).logits[0, -1]
        out.append(int(logits.argmax()))
        if out[-1] == tok.eos_token_id or STOP_STRING in tok.decode(out, skip_special_tokens=True):
            return out, True
    return out, False


def test_greedy_generate_equals_naive_decoding(model, tiny_tok) -> None:
    prompts = [_ids(4, 20, len(tiny_tok)), _ids(9, 21, len(tiny_tok))]  # left padding differs
    ro = generate(model, tiny_tok, prompts, group_size=2, max_new_tokens=10, temperature=0.0)
    expected = [_naive_greedy(model, tiny_tok, p, 10) for p in prompts for _ in range(2)]
    assert ro.completions == [c for c, _ in expected]
    assert ro.stopped == [s for _, s in expected]
    assert ro.generated_tokens == sum(len(c) for c in ro.completions)
    assert ro.completions[0] != ro.completions[2]  # the two prompts are decoded differently


def test_seeded_sampling_repeats(model, tiny_tok) -> None:
    prompts = [_ids(5, 30, len(tiny_tok)), _ids(3, 31, len(tiny_tok))]

    def run(seed: int) -> list[list[int]]:
        gen = torch.Generator().manual_seed(seed)
        return generate(
            model, tiny_tok, prompts, 3, 8, temperature=1.0, top_p=0.9, generator=gen
        ).completions

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    assert len({tuple(c) for c in first}) > 1  # sampled, not greedy


def test_groups_batched_with_own_generators_equal_groups_alone(model, tiny_tok) -> None:
    prompts = [_ids(5, 40, len(tiny_tok)), _ids(9, 41, len(tiny_tok)), _ids(2, 42, len(tiny_tok))]

    def gens() -> list[torch.Generator]:
        return [torch.Generator().manual_seed(100 + i) for i in range(len(prompts))]

    together = generate(model, tiny_tok, prompts, 3, 12, temperature=1.0, top_p=0.95, generator=gens())
    alone = [
        c
        for p, g in zip(prompts, gens(), strict=True)
        for c in generate(model, tiny_tok, [p], 3, 12, temperature=1.0, top_p=0.95, generator=[g]).completions
    ]
    assert together.completions == alone
    assert len({tuple(c) for c in alone}) > 3  # really sampled


def test_inverse_cdf_sampling_follows_the_distribution() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2, 0.0]])).expand(20000, 4)
    u = torch.rand(20000, generator=torch.Generator().manual_seed(0))
    draws = sample_next(logits, 1.0, 1.0, u)
    freq = torch.bincount(draws, minlength=4).float() / 20000
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.2, 0.0]), atol=0.015)
    assert freq[3] == 0  # zero probability is never drawn
    # top-p 0.7 keeps {0.5, 0.3}: renormalized to 0.625 / 0.375
    freq = torch.bincount(sample_next(logits, 1.0, 0.7, u), minlength=4).float() / 20000
    assert torch.allclose(freq, torch.tensor([0.625, 0.375, 0.0, 0.0]), atol=0.015)
    # a row's draw depends only on its own uniform
    assert sample_next(logits[:3], 1.0, 1.0, u[:3]).tolist() == draws[:3].tolist()


class _FakeCache:
    """Tracks which prompt each batch row belongs to, through repeats and row drops."""

    def __init__(self, rows: int) -> None:
        self.prompt_of = list(range(rows))
        self.step = 0

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.prompt_of = [p for p in self.prompt_of for _ in range(repeats)]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.prompt_of = [self.prompt_of[i] for i in indices.tolist()]


class ScriptedLM(torch.nn.Module):
    """Emits ``scripts[p][step]`` for every row of prompt p: a model with a fixed output."""

    def __init__(self, scripts: list[list[int]], vocab: int) -> None:
        super().__init__()
        self.scripts, self.vocab = scripts, vocab
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # generate() asks for the device
        self.fed: list[list[int]] = []

    def forward(self, input_ids, past_key_values=None, **_: object) -> SimpleNamespace:
        if past_key_values is None:  # prefill: one row per prompt
            cache = _FakeCache(input_ids.shape[0])
        else:  # decoding: the cache knows each row's prompt
            cache = past_key_values
            cache.step += 1
            self.fed.append(input_ids[:, 0].tolist())
            assert len(cache.prompt_of) == input_ids.shape[0]
        rows = cache.prompt_of
        logits = torch.full((len(rows), 1, self.vocab), -1e4)
        for i, p in enumerate(rows):
            script = self.scripts[p]
            logits[i, 0, script[min(cache.step, len(script) - 1)]] = 0.0
        return SimpleNamespace(logits=logits, past_key_values=cache)


def test_rows_stop_at_eos_or_after_stop_string(tiny_tok) -> None:
    def ids(text: str) -> list[int]:
        return tiny_tok.convert_tokens_to_ids(text.split())

    scripts = [
        ids("<SLATE> [1] [2] </SLATE> <RANK> [2] </RANK> [3] [4] [5]"),  # stop string: 7 tokens
        ids("<SLATE> [1] </SLATE> <eos> [5] [6]"),  # EOS: 4 tokens, EOS kept
        # '>' everywhere but no </RANK>: runs to the limit
        ids("<SLATE> > </SLATE> > <RANK> > > [1]") * 3,
        ids("[1] [2] [3] [4] [5] [6] [7] [8] [9] [10] [11] [12] [13]"),
    ]
    fake = ScriptedLM(scripts, len(tiny_tok))
    ro = generate(
        fake,
        tiny_tok,
        [[5], [6, 7], [8], [9, 9, 9]],
        group_size=2,
        max_new_tokens=12,
        temperature=0.0,
    )
    expected = [scripts[0][:7], scripts[1][:4], scripts[2][:12], scripts[3][:12]]
    assert ro.completions == [c for c in expected for _ in range(2)]
    assert ro.stopped == [True, True, True, True, False, False, False, False]
    assert ro.generated_tokens == 2 * (7 + 4 + 12 + 12)
    # each decoding step feeds back the token just emitted, for the unfinished rows only
    for step, fed in enumerate(fake.fed):
        running = [c for c in ro.completions if len(c) > step + 1]
        assert fed == [c[step] for c in running]


def test_stop_string_split_over_bpe_tokens(bpe_tok) -> None:
    text = "<SLATE>[1] [2]</SLATE><RANK>[2] > [1]</RANK>[3] [4] more text"
    script = bpe_tok.encode(text, add_special_tokens=False)
    fake = ScriptedLM([script], len(bpe_tok))
    ro = generate(fake, bpe_tok, [[5, 6]], group_size=3, max_new_tokens=40, temperature=0.0)
    c = ro.completions[0]
    assert ro.completions == [c] * 3 and ro.stopped == [True] * 3
    # the row stops at the token that completes </RANK> (here '</' 'RAN' 'K' '>'), not later
    assert STOP_STRING in bpe_tok.decode(c) and STOP_STRING not in bpe_tok.decode(c[:-1])
    assert c == script[: len(c)] and len(c) < len(script)


# ----------------------------------------------------------------------------- gradient phases


@pytest.fixture(scope="module")
def group(tiny_tok):
    """A prompt and G = 4 tokenized completions with both phases, their masks."""
    eos = tiny_tok.eos_token_id
    outputs = [([1, 2, 3], [2, 1]), ([4, 2], [4]), ([1], [1]), ([5, 6, 7, 8], [8, 5, 6])]
    comps = [
        tiny_tok.encode(render_completion(s, r), add_special_tokens=False) + [eos]
        for s, r in outputs
    ]
    texts = decode_completions(tiny_tok, comps)
    ends = [parse_completion(t, 8, 10, 5).slate_end for t in texts]
    counts = slate_token_counts(tiny_tok, comps, texts, ends)
    assert counts == [len(s) + 2 for s, _ in outputs]  # <SLATE> items </SLATE>
    lengths = torch.tensor([len(c) for c in comps])
    slate, rank = phase_masks(torch.tensor(counts), lengths, int(lengths.max()))
    assert slate.any(1).all() and rank.any(1).all() and (lengths < lengths.max()).any()
    return _ids(6, 40, len(tiny_tok)), comps, slate, rank


def _logp_grad(model, tiny_tok, group, estimator: str, r_slate, r_rank, mode: str = "dr_grpo"):
    """Gradients of the clipped-surrogate loss w.r.t. the per-token log-probs and the logits."""
    prompt, comps, slate, rank = group
    captured: list[torch.Tensor] = []

    def keep(_m, _inp, out: torch.Tensor) -> None:
        out.retain_grad()
        captured.append(out)

    handle = model.lm_head.register_forward_hook(keep)
    try:
        logp, mask = completion_logprobs(
            model, prompt, comps, tiny_tok.pad_token_id, share_prefix=False
        )
    finally:
        handle.remove()
    logp.retain_grad()
    adv = ca.ADVANTAGE_ESTIMATORS[estimator](
        torch.tensor([r_slate]), torch.tensor([r_rank]), slate, rank, 1.0
    )
    token_loss, _ = ca.clipped_surrogate(logp, logp.detach(), adv)
    loss = ca.aggregate_loss(token_loss, mask, mode, ca.loss_normalizer(mask, mode, mask.shape[1]))  # type: ignore[arg-type]
    model.zero_grad()
    loss.backward()
    (logits,) = captured  # [G, T+1, V]: the last position predicts past the completion
    per_token_logit_grad = logits.grad[:, :-1].abs().sum(-1)  # [G, T]
    return logp.grad, per_token_logit_grad, mask


VARYING, FLAT = [1.0, 0.0, 0.75, 0.25], [0.5, 0.5, 0.5, 0.5]


@pytest.mark.parametrize("mode", ["dr_grpo", "token_mean", "seq_mean"])
def test_flat_rank_reward_gives_rank_tokens_no_gradient(model, tiny_tok, group, mode) -> None:
    _, _, slate, rank = group
    g_logp, g_logits, mask = _logp_grad(model, tiny_tok, group, "fgrpo", VARYING, FLAT, mode)
    assert (g_logp[rank] == 0).all() and (g_logits[rank] == 0).all()
    assert (g_logp[slate] != 0).all() and (g_logits[slate] > 0).all()
    assert (g_logp[~mask] == 0).all() and (g_logits[~mask] == 0).all()  # padding
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_flat_slate_reward_gives_slate_tokens_no_gradient(model, tiny_tok, group) -> None:
    _, _, slate, rank = group
    g_logp, g_logits, _ = _logp_grad(model, tiny_tok, group, "fgrpo", FLAT, VARYING)
    assert (g_logp[slate] == 0).all() and (g_logits[slate] == 0).all()
    assert (g_logp[rank] != 0).all() and (g_logits[rank] > 0).all()


@pytest.mark.parametrize(("r_slate", "r_rank"), [(VARYING, FLAT), (FLAT, VARYING)])
def test_grpo_sends_gradient_to_both_phases(model, tiny_tok, group, r_slate, r_rank) -> None:
    _, _, slate, rank = group
    g_logp, g_logits, mask = _logp_grad(model, tiny_tok, group, "grpo", r_slate, r_rank)
    assert (g_logp[slate] != 0).all() and (g_logp[rank] != 0).all()
    assert (g_logits[mask] > 0).all()
