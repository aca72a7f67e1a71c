"""A tiny randomly initialized Llama and a word-level tokenizer, for tests and the toy task.

Llama architecture (the one SmolLM2 and most open LLMs share), small enough to train on
a laptop CPU in seconds. The tokenizer knows the output-format tags and ``[1]..[64]`` as
whole tokens, so a completion is a few tokens long.
"""

from __future__ import annotations

from typing import Any

import torch

from fgrpo.data.toy import TOY_QUERY, TOY_WORDS
from fgrpo.format.completion import TAGS

TINY_LLAMA_ID = "builtin:tiny-llama"
MAX_NUMBER = 64


def build_tiny_tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<unk>"]
    structural = list(TAGS) + [f"[{k}]" for k in range(1, MAX_NUMBER + 1)]
    words = [">", "*", "**", ":", ",", "answer", *TOY_QUERY.split(), *TOY_WORDS]
    vocab: dict[str, int] = {}
    for tok in specials + structural + words:
        vocab.setdefault(tok, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_tokens(structural)  # split out of "<SLATE>[4]" without surrounding spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def build_tiny_llama(
    vocab_size: int, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4, seed: int = 0
) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=1,
        pad_token_id=0,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.float()
