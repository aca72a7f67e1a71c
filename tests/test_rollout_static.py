"""The static decoder (:mod:`fgrpo.rollout.static_llama`) against transformers' forward.

- its prefill's logits and, per step, its logits equal the model's forward over a repeated DynamicCache within 1e-5
  (left-padded prompts of different lengths, grouped-query attention, G > 1, every step);
- ``generate`` through it gives the same completions and stop flags as through
  ``model(...)`` for a fixed seed, sampled and greedy, constrained (id-tiny) and free;
- a LoRA model decodes with its adapters merged in, and a weight changed in place (an
  optimizer step) is seen by the next call: the packed weights are rebuilt;
- a model it cannot read (biases) falls back to the forward, with the same completions.
Training reads only the tokens (its forward is untouched), so with the same completions
its log-probs and gradients are the same.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fgrpo.data.schema import Candidate, Example
from fgrpo.format.items import ItemConstraint
from fgrpo.format.prompts import encode_prompt
from fgrpo.models.idtiny import build_id_tiny, build_item_tokenizer
from fgrpo.models.tiny import build_tiny_llama, build_tiny_tokenizer
from fgrpo.rollout import engine, static_llama

torch.set_num_threads(1)


def _gqa_llama(**extra: object) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=50, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=True, eos_token_id=1, pad_token_id=0, **extra)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).float().eval()


def _step_logits(model: torch.nn.Module, prompts: list[list[int]], group: int, feeds: torch.Tensor) -> tuple[list, list]:
    """The prefill's logits and each fed step's, from the decoder and from the forward over a
    repeated cache."""
    ids, mask = engine.left_pad(prompts, 0)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        dec = static_llama.LlamaDecoder(model, ids, mask, group, feeds.shape[1])
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        ref = out.past_key_values
        ref.batch_repeat_interleave(group)
        m = mask.repeat_interleave(group, 0)
        nxt = pos[:, -1:].repeat_interleave(group, 0) + 1
        ours, theirs = [dec.first_logits], [out.logits[:, -1]]  # the prefill's, then every step's
        for t in range(feeds.shape[1]):
            ours.append(dec.step(feeds[:, t]))
            m = torch.cat([m, m.new_ones(len(m), 1)], 1)
            theirs.append(model(input_ids=feeds[:, t : t + 1], attention_mask=m, position_ids=nxt + t,
                                past_key_values=ref, use_cache=True).logits[:, -1])
    return ours, theirs


def test_decoder_logits_equal_the_forward_every_step() -> None:
    model = _gqa_llama()
    assert static_llama.supports(model)
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16]]
    feeds = torch.randint(2, 50, (3 * 4, 7), generator=torch.Generator().manual_seed(1))
    ours, theirs = _step_logits(model, prompts, 4, feeds)
    assert ours[0].shape == theirs[0].shape == (3, 50)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() < 1e-5
    assert len(ours) == 8 and ours[1].shape == (12, 50)


def test_lora_weights_are_merged_and_an_update_is_seen() -> None:
    from fgrpo.models.loading import add_lora

    model = add_lora(_gqa_llama(), 4, 8, 0.0, "all-linear")
    for name, p in model.named_parameters():  # LoRA's B starts at zero: give the adapters an effect
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    model.eval()
    assert static_llama.supports(model)
    prompts, feeds = [[5, 6, 7], [8, 9]], torch.randint(2, 50, (4, 3), generator=torch.Generator().manual_seed(2))
    ours, theirs = _step_logits(model, prompts, 2, feeds)
    assert max((a - b).abs().max().item() for a, b in zip(ours, theirs, strict=True)) < 1e-5
    with torch.no_grad():  # an optimizer step, in place: the packed weights must follow
        next(p for n, p in model.named_parameters() if "lora_A" in n).add_(0.3)
    ours2, theirs2 = _step_logits(model, prompts, 2, feeds)
    assert (theirs2[0] - theirs[0]).abs().max().item() > 1e-3  # the update changes the model
    assert max((a - b).abs().max().item() for a, b in zip(ours2, theirs2, strict=True)) < 1e-5


def test_unsupported_models_fall_back() -> None:
    assert not static_llama.supports(_gqa_llama(attention_bias=True))
    assert not static_llama.supports(torch.nn.Linear(3, 3))


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_generate_same_completions_free_tiny_llama(temperature: float) -> None:
    tok = build_tiny_tokenizer()
    model = build_tiny_llama(len(tok), seed=3).eval()
    prompts = [tok.encode("answer [3] [4] , [5]"), tok.encode("answer [7] :"), tok.encode("[1] [2] [9] [10] answer")]
    runs = {}
    for static in (True, False):
        gens = [torch.Generator().manual_seed(50 + i) for i in range(len(prompts))]
        runs[static] = engine.generate(model, tok, prompts, 4, 12, temperature, 1.0, gens, static_cache=static)
    assert runs[True].completions == runs[False].completions
    assert runs[True].stopped == runs[False].stopped
    assert runs[True].generated_tokens == runs[False].generated_tokens


def test_generate_same_completions_constrained_id_tiny() -> None:
    n_items = 30
    tok = build_item_tokenizer([str(i) for i in range(1, n_items + 1)])
    model = build_id_tiny(len(tok), seed=4).eval()
    rng = np.random.default_rng(5)
    examples = []
    for e in range(4):
        ids = rng.choice(np.arange(1, n_items + 1), size=8, replace=False)
        hist = [str(i) for i in rng.choice(np.arange(1, n_items + 1), size=3 + e)]  # prompts of different lengths
        examples.append(Example(f"u{e}", "q", [Candidate(str(i), f"m{i}") for i in ids], {str(ids[0]): 1},
                                task="movies", meta={"history_ids": hist}))
    prompts = [encode_prompt(tok, ex, 5, 3) for ex in examples]
    runs = {}
    for static in (True, False):
        gens = [torch.Generator().manual_seed(70 + i) for i in range(len(prompts))]
        con = ItemConstraint(tok, examples, max_slate=5, max_rank=3)
        runs[static] = engine.generate(model, tok, prompts, 6, 16, 1.0, 1.0, gens, constraint=con, static_cache=static)
    assert runs[True].completions == runs[False].completions
    assert runs[True].stopped == runs[False].stopped
    assert len({tuple(c) for c in runs[True].completions}) > 4  # sampled, not one answer repeated
