"""``id-tiny``: a small Llama trained from scratch with one token per item (generative recommender).

Why: minutes per run on a 2-core CPU, so seeds and ablations are cheap. A 4-layer model
reading ``[k] title`` pairs and answering by number stayed at chance after a supervised
warm start (issue 6), so this preset changes what the model reads and writes:

* **Vocabulary**: one token per item id, written ``[i<id>]``, plus the format tags,
  ``<POOL>``, ``<HIST>``, ``>`` and ``<pad>``/``<eos>``/``<unk>`` (:func:`build_item_tokenizer`).
  Prompts and completions use item tokens (:mod:`fgrpo.format.items`); the parser maps
  them back to candidate numbers, so rewards, metrics and phase masks are unchanged.
* **Warm start in two stages**: (a) next-item pretraining over item tokens on the
  training split's user sequences (:func:`pretrain_items`, command ``fgrpo pretrain-items``),
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

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fgrpo.config import option
from fgrpo.data.schema import Example, read_jsonl, read_split, skipped_rows_lines
from fgrpo.data.splits import say, write_data_report
from fgrpo.format.completion import TAGS
from fgrpo.format.items import HIST_TOKEN, PROMPT_TOKENS, item_token
from fgrpo.rollout.engine import left_pad
from fgrpo.trainer.schedule import warmup_cosine

ID_TINY_ID = "builtin:id-tiny"
SPECIALS = ("<pad>", "<eos>", "<unk>")  # ids 0, 1, 2: build_tiny_llama's pad and eos ids


def _id_key(item: str) -> tuple[int, int, str]:
    return (0, int(item), "") if item.isdigit() else (1, 0, item)


def collect_item_ids(folder: str | Path, skip_invalid: bool = False) -> list[str]:
    """Every item id in a prepared dataset folder (candidates and histories of each split)."""
    ids: set[str] = set()
    for split in ("train", "valid", "test"):
        path = Path(folder) / f"{split}.jsonl"
        if not path.is_file():
            continue
        for ex in read_jsonl(path, skip_invalid):
            ids.update(c.id for c in ex.candidates)
            ids.update(str(h) for h in ex.meta.get("history_ids", []) or [])
    if not ids:
        raise FileNotFoundError(f"{folder}: no train/valid/test.jsonl with candidates")
    return sorted(ids, key=_id_key)


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


def train_sequences(examples: list[Example]) -> list[list[str]]:
    """Each user's item sequence, rebuilt from training examples only.

    An example at position ``t`` says item ``t`` is its target and items ``t-len(h)..t-1``
    are its history window ``h``; the union over a user's examples gives positions
    0..max. A gap (e.g. ``max_train_per_user``) splits the sequence into segments."""
    by_user: dict[str, dict[int, str]] = {}
    for ex in examples:
        user, t = ex.meta.get("user"), ex.meta.get("position")
        hist = ex.meta.get("history_ids")
        target = [c for c, g in ex.relevance.items() if g > 0]
        if user is None or not isinstance(t, int) or not isinstance(hist, list) or len(target) != 1:
            raise ValueError(
                f"example '{ex.id}': next-item pretraining needs meta.user, meta.position, meta.history_ids "
                "and one relevant item (a sequential dataset made by `fgrpo prepare`)"
            )
        items = by_user.setdefault(str(user), {})
        items[t] = target[0]
        for j, h in enumerate(hist):
            items[t - len(hist) + j] = str(h)
    out: list[list[str]] = []
    for user in sorted(by_user, key=_id_key):
        items = by_user[user]
        segment: list[str] = []
        last = None
        for pos in sorted(items):
            if last is not None and pos != last + 1 and segment:
                out.append(segment)
                segment = []
            segment.append(items[pos])
            last = pos
        if segment:
            out.append(segment)
    return [s for s in out if len(s) >= 2]


def next_item_batch(
    sequences: list[np.ndarray], weights: np.ndarray, batch_size: int, seq_len: int, hist_id: int, pad_id: int, rng: np.random.Generator
) -> dict[str, torch.Tensor]:
    """A left-padded batch of ``<HIST> i_a .. i_b`` windows (at most ``seq_len`` items, ending at
    a uniformly drawn position of a length-weighted user); labels are the next items."""
    users = rng.choice(len(sequences), size=batch_size, p=weights)
    rows = []
    for u in users:
        seq = sequences[u]
        end = int(rng.integers(2, len(seq) + 1))  # at least two items: one target after the first
        rows.append([hist_id, *seq[max(0, end - seq_len) : end].tolist()])
    ids, mask = left_pad(rows, pad_id)
    labels = ids.clone()
    labels[mask == 0] = -100
    labels[:, :-1][ids[:, :-1] == hist_id] = -100  # never predict <HIST> (it only starts rows)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def next_item_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of every next item (position t predicts token t+1)."""
    positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=positions).logits
    targets = batch["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100)


def pretrain_items(
    model: Any,
    tokenizer: Any,
    sequences: list[list[str]],
    steps: int,
    batch_size: int,
    seq_len: int,
    learning_rate: float,
    seed: int,
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    max_grad_norm: float = 1.0,
    log: Callable[[dict[str, float]], None] | None = None,
    log_every: int = 50,
    validate: Callable[[], float] | None = None,
    eval_every: int = 0,
    patience: int = 0,
) -> list[float]:
    """``steps`` AdamW steps of next-item cross-entropy over item-token sequences.

    ``validate`` (a score, higher is better; the valid split's next-item NDCG@5) every
    ``eval_every`` steps: early stopping as for the SASRec/GRU4Rec baselines. The best
    scoring weights are restored at the end, and training stops after ``patience``
    evaluations without a better score (0: never stops early). Without it this small Llama,
    which has no dropout, memorizes the training sequences (measured in docs/results.md)."""
    if steps > 0 and not sequences:  # else numpy fails on an empty draw with a message naming neither
        raise ValueError("next-item pretraining needs at least one training sequence of two or more items")
    rng = np.random.default_rng(seed)
    seqs = [np.array(tokenizer.convert_tokens_to_ids([item_token(i) for i in s]), dtype=np.int64) for s in sequences]
    lengths = np.array([len(s) - 1 for s in seqs], dtype=np.float64)
    weights = lengths / lengths.sum()  # every training position equally likely to end a window
    hist_id = tokenizer.convert_tokens_to_ids(HIST_TOKEN)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup_steps, steps))
    model.train()
    losses: list[float] = []
    best: tuple[float, int, dict[str, torch.Tensor] | None] = (-math.inf, 0, None)
    misses = 0
    for step in range(steps):
        t0 = time.perf_counter()
        if validate is not None and eval_every > 0 and step > 0 and step % eval_every == 0:
            score = validate()
            model.train()
            if log is not None:
                log({"step": step, "valid/next_item_NDCG@5": score})
            if score > best[0]:
                best, misses = (score, step, {k: v.detach().clone() for k, v in model.state_dict().items()}), 0
            else:
                misses += 1
                if patience and misses >= patience:
                    break
        batch = next_item_batch(seqs, weights, batch_size, seq_len, hist_id, tokenizer.pad_token_id, rng)
        loss = next_item_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if log is not None and (step % log_every == 0 or step == steps - 1):
            log({"step": step + 1, "pretrain/loss": losses[-1], "pretrain/grad_norm": float(grad_norm),
                 "pretrain/lr": scheduler.get_last_lr()[0], "step_time_s": time.perf_counter() - t0})  # fmt: skip
    if validate is not None and eval_every > 0 and best[2] is not None:
        final = validate()
        if log is not None:
            log({"step": len(losses), "valid/next_item_NDCG@5": final})
        if final < best[0]:  # the best evaluated weights, not the last ones
            model.load_state_dict(best[2])
            if log is not None:
                log({"step": len(losses), "note": f"restored the weights of step {best[1]} (valid next-item NDCG@5 {best[0]:.4f})"})
    model.eval()
    return losses


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


@dataclass
class PretrainItemsConfig:
    """``fgrpo pretrain-items``: build the id-tiny preset and pretrain it on next items."""

    dataset: str = option("runs/idtiny/data", "A sequential dataset folder made by `fgrpo prepare` (train.jsonl with meta.user/position/history_ids).")
    output_dir: str = option("runs/idtiny/pretrain", "Where model/ (the Hugging Face folder), metrics.jsonl, config.yaml and summary.json are written.")
    seed: int = option(0, "Seed of initialization and window sampling.")
    hidden_size: int = option(128, "Hidden width of the Llama.")
    num_layers: int = option(4, "Decoder layers.")
    num_heads: int = option(4, "Attention heads (hidden_size must be divisible by it).")
    attention_dropout: float = option(0.0, "Dropout on the attention weights while training (Llama's only dropout; saved in the model's config, so SFT and RL train with it too).")
    max_steps: int = option(3000, "Optimizer steps of next-item pretraining (0: save the random model).")
    batch_size: int = option(64, "Windows per step.")
    seq_len: int = option(32, "Most items per window (the SFT prompt shows 10 history items).")
    learning_rate: float = option(0.002, "Peak AdamW learning rate (ours: a common value for SASRec-sized models).")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    warmup_steps: int = option(100, "Linear warm-up steps before the cosine decay.")
    max_grad_norm: float = option(1.0, "Gradient-norm clip.")
    eval_limit: int = option(0, "If > 0, score this many valid examples with the pretrained next-item logits (NDCG@5 in summary.json).")
    eval_every: int = option(0, "If > 0 (and eval_limit > 0), score the valid examples every N steps and keep the best weights: early stopping on valid next-item NDCG@5, as the SASRec/GRU4Rec baselines get.")
    patience: int = option(0, "Stop after this many evaluations without a better valid score (0: run max_steps, still restoring the best).")
    log_every: int = option(50, "Write a metrics line every N steps.")
    torch_threads: int = option(1, "CPU threads for torch (0: torch's default).")
    skip_invalid_rows: bool = option(False, "Skip and count malformed data rows instead of stopping at the first (as in fgrpo train); the count is printed and written to output_dir/data_report.json.")

    def validate(self) -> None:
        from fgrpo.config import check_output_dir
        from fgrpo.trainer.config import check_at_least

        check_output_dir(self.output_dir)
        check_at_least(self, 0, "max_steps", "learning_rate", "weight_decay", "warmup_steps", "eval_limit", "torch_threads")
        check_at_least(self, 1, "num_heads", "hidden_size")
        if not self.max_grad_norm > 0:
            raise ValueError(f"key 'max_grad_norm' must be > 0, got {self.max_grad_norm}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"key 'hidden_size' ({self.hidden_size}) must be divisible by 'num_heads' ({self.num_heads})")
        for key in ("batch_size", "seq_len", "num_layers", "log_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"key '{key}' must be >= 1")


def run_pretrain_items(cfg: PretrainItemsConfig) -> Path:
    """Build the preset from the dataset's catalogue, pretrain it, save ``output_dir/model``."""
    from fgrpo.config import save_config
    from fgrpo.models.card import write_model_card
    from fgrpo.trainer.sft import jsonl_logger

    cfg.validate()  # also when called from Python rather than through load_config
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    t0 = time.perf_counter()
    tokenizer = build_item_tokenizer(collect_item_ids(cfg.dataset, cfg.skip_invalid_rows))
    model = build_id_tiny(len(tokenizer), cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.seed, cfg.attention_dropout)
    report: dict[str, Any] = {"files": {}}
    train = read_split(Path(cfg.dataset) / "train.jsonl", cfg.skip_invalid_rows, report["files"])
    for line in skipped_rows_lines(report["files"]):
        say(line)
    write_data_report(out, report)
    sequences = train_sequences(train)
    valid_path = Path(cfg.dataset) / "valid.jsonl"
    valid = read_jsonl(valid_path)[: cfg.eval_limit] if cfg.eval_limit > 0 and valid_path.is_file() else []
    validate = (lambda: score_next_item(model, tokenizer, valid)["next_item/NDCG@5"]) if valid and cfg.eval_every > 0 else None
    t_train = time.perf_counter()
    losses = pretrain_items(
        model, tokenizer, sequences, cfg.max_steps, cfg.batch_size, cfg.seq_len, cfg.learning_rate, cfg.seed,
        cfg.warmup_steps, cfg.weight_decay, cfg.max_grad_norm, jsonl_logger(out / "metrics.jsonl"), cfg.log_every,
        validate, cfg.eval_every, cfg.patience,
    )  # fmt: skip
    summary: dict[str, Any] = {
        "vocab_size": len(tokenizer), "parameters": sum(p.numel() for p in model.parameters()),
        "train_sequences": len(sequences), "train_positions": int(sum(len(s) - 1 for s in sequences)),
        "first_loss": losses[0] if losses else None, "last_loss": float(np.mean(losses[-50:])) if losses else None,
        "pretrain_seconds": time.perf_counter() - t_train,
    }  # fmt: skip
    if cfg.eval_limit > 0 and (Path(cfg.dataset) / "valid.jsonl").is_file():
        summary.update(score_next_item(model, tokenizer, read_jsonl(Path(cfg.dataset) / "valid.jsonl", cfg.skip_invalid_rows)[: cfg.eval_limit]))
    summary["total_seconds"] = time.perf_counter() - t0
    folder = out / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_model_card(folder, {"model": ID_TINY_ID, **vars(cfg)}, training="next-item pretraining over item tokens (fgrpo pretrain-items)")
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return folder


def score_next_item(model: Any, tokenizer: Any, examples: list[Example]) -> dict[str, float]:
    """NDCG@5 and Hit@1 of ranking each pool by the next-item logits (valid split: a diagnostic)."""
    from fgrpo.baselines.scorers import order_by_score
    from fgrpo.evaluation.metrics import per_example_metrics

    scores = next_item_scores(model, tokenizer, examples)
    rankings = [order_by_score(s)[:5] for s in scores]
    metrics = per_example_metrics(rankings, [ex.grades() for ex in examples], (1, 5))
    return {f"next_item/{k}": float(np.mean(v)) for k, v in metrics.items()} | {"next_item/num_examples": len(examples)}
