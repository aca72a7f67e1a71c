"""``id-tiny``: a small Llama trained from scratch with one token per item (generative recommender).

Why: minutes per run on a 2-core CPU, so seeds and ablations are cheap. A 4-layer model
reading ``[k] title`` pairs and answering by number stayed at chance after a supervised
warm start (docs/id-tiny.md), so this preset changes what the model reads and writes:

* **Vocabulary**: one token per item id, written ``[i<id>]``, plus the format tags,
  ``<POOL>``, ``<HIST>``, ``>`` and ``<pad>``/``<eos>``/``<unk>`` (:func:`build_item_tokenizer`).
  Prompts and completions use item tokens (:mod:`fgrpo.format.items`); the parser maps
  them back to candidate numbers, so rewards, metrics and phase masks are unchanged.
* **Warm start in two stages**: (a) next-item pretraining over item tokens on the
  training split's user sequences (:func:`fgrpo.trainer.pretrain.pretrain_items`, command ``fgrpo pretrain-items``),
  the SASRec objective with a Llama; (b) ``fgrpo sft`` on the slate+rank format from that
  model, with ``slate_order=ranked`` and ``filler_policy=model`` (fillers ordered by the
  pretrained model's own next-item scores), so greedy decoding lists the pool in the
  model's preference order.

No leakage: the training sequences are rebuilt from ``train.jsonl`` alone (targets and
history windows of the training positions). Under the leave-one-out split the validation
target (position n-2) and the test target (n-1) never appear there.

The vocabulary is the set of item ids in the dataset folder (candidates and histories of
every split: ids, not labels), so the model folder is tied to that catalogue.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from fgrpo.data.schema import Example
from fgrpo.format.completion import TAGS
from fgrpo.format.items import HIST_TOKEN, PROMPT_TOKENS, item_token
from fgrpo.rollout.engine import left_pad

ID_TINY_ID = "builtin:id-tiny"
SPECIALS = ("<pad>", "<eos>", "<unk>")  # ids 0, 1, 2: build_tiny_llama's pad and eos ids


def id_key(item: str) -> tuple[int, int, str]:
    return (0, int(item), "") if item.isdigit() else (1, 0, item)


def catalogue_ids(splits: Iterable[list[Example]]) -> list[str]:
    """Every item id of a dataset's splits (candidates and histories), sorted: the vocabulary."""
    ids: set[str] = set()
    for examples in splits:
        for ex in examples:
            ids.update(c.id for c in ex.candidates)
            ids.update(str(h) for h in ex.meta.get("history_ids", []) or [])
    return sorted(ids, key=id_key)


def build_item_tokenizer(item_ids: list[str]) -> Any:
    """Word-level tokenizer: specials, format tags, ``<POOL>``/``<HIST>``, ``>``, then one
    token per item. Tags and item tokens are added tokens, so ``<SLATE>[i3]`` splits
    without spaces; decoding joins tokens with single spaces."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    items = [item_token(i) for i in item_ids]
    structural = [*TAGS, *PROMPT_TOKENS]
    vocab: dict[str, int] = {}
    for tok in [*SPECIALS, *structural, ">", *items]:
        vocab.setdefault(tok, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_tokens([*structural, *items])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def build_id_tiny(
    vocab_size: int, hidden_size: int = 128, num_layers: int = 4, num_heads: int = 4, seed: int = 0,
    attention_dropout: float = 0.0,
) -> Any:  # fmt: skip
    """The randomly initialized Llama of the preset (MLP twice the width, tied embeddings).
    ``attention_dropout``: Llama's only dropout (on the attention weights, training mode only)."""
    from fgrpo.models.tiny import build_tiny_llama

    model = build_tiny_llama(vocab_size, hidden_size, num_layers, num_heads, seed=seed)
    model.config.attention_dropout = attention_dropout
    for layer in model.model.layers:
        layer.self_attn.attention_dropout = attention_dropout
    return model


@torch.no_grad()
def init_item_embeddings(model: Any, tokenizer: Any, vectors: dict[str, torch.Tensor]) -> int:
    """Copy each item's vector into its token's (tied) embedding row, the block rescaled to
    the standard deviation of the rows it replaces (the Llama's init scale: a trained SASRec
    table is larger, and an input embedding that large would swamp the residual stream);
    directions and relative norms are kept. Returns how many rows were copied. As LLaRA
    starts from SASRec's item embeddings (docs/results.md)."""
    emb = model.get_input_embeddings().weight
    pairs = [(tokenizer.convert_tokens_to_ids(item_token(i)), v) for i, v in vectors.items()]
    pairs = [(row, v) for row, v in pairs if row is not None and row != tokenizer.unk_token_id]
    if not pairs:
        return 0
    width = len(pairs[0][1])
    if width != emb.shape[1]:
        raise ValueError(f"the item vectors are {width} wide, the model's hidden_size is {emb.shape[1]}: set hidden_size={width}")
    rows = torch.tensor([r for r, _ in pairs])
    block = torch.stack([v for _, v in pairs]).to(emb.dtype)
    target_std = emb[rows].std()
    emb[rows] = (block - block.mean()) / block.std() * target_std
    return len(pairs)


@torch.no_grad()
def next_item_scores(model: Any, tokenizer: Any, examples: list[Example], batch_size: int = 256) -> list[list[float]]:
    """Per example, the model's next-item logit of each candidate after ``<HIST> history``
    (the pretraining format): the pretrained model as a scorer, and the filler order of SFT."""
    from fgrpo.format.items import history_ids

    hist_id = tokenizer.convert_tokens_to_ids(HIST_TOKEN)
    was_training = model.training
    model.eval()
    out: list[list[float]] = []
    for s in range(0, len(examples), batch_size):
        chunk = examples[s : s + batch_size]
        rows = [[hist_id, *tokenizer.convert_tokens_to_ids([item_token(h) for h in history_ids(ex)])] for ex in chunk]
        ids, mask = left_pad(rows, tokenizer.pad_token_id)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        device = next(model.parameters()).device
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device), logits_to_keep=1).logits[:, -1]
        for i, ex in enumerate(chunk):
            cand = tokenizer.convert_tokens_to_ids([item_token(c.id) for c in ex.candidates])
            out.append(logits[i, cand].float().tolist())
    model.train(was_training)
    return out
