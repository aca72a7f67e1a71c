"""Sequential-recommendation baselines trained from scratch: SASRec and GRU4Rec.

Compact PyTorch versions of the two classical rows of the paper's recommendation table
(RecBole has them, but recbole 1.2.1 does not import with numpy 2):

* **SASRec** — W.-C. Kang and J. McAuley, "Self-Attentive Sequential Recommendation",
  ICDM 2018. Item + learned position embeddings, causal self-attention blocks (pre-norm,
  point-wise feed-forward, residuals, dropout), a final layer norm; the next-item logit is
  the dot product with the (shared) item embedding.
* **GRU4Rec** — B. Hidasi, A. Karatzoglou, L. Baltrunas and D. Tikk, "Session-based
  Recommendations with Recurrent Neural Networks", ICLR 2016, in the now-standard variant
  trained with a full-softmax cross-entropy loss (Hidasi & Karatzoglou, "Recurrent Neural
  Networks with Top-k Gains for Session-based Recommendations", CIKM 2018, whose
  cross-entropy option RecBole's GRU4Rec follows): item embedding, dropout, a GRU, a
  linear projection, dot product with the item embedding.

Both train on the training split only, with a cross-entropy over the full item vocabulary
for every next item of a training sequence (all prefixes). By default (``train_on="users"``)
the sequences are each user's chronological items rebuilt from the training rows
(``meta["user"]``, ``meta["position"]``, ``meta["history_ids"]``, most recent last, as written
by the MovieLens/LLaRA builders), cut into chunks of ``max_len + 1``: every transition once,
as the SASRec authors train; ``train_on="windows"`` uses each row's ``history_ids + [relevant
id]`` as given (ML-100K's rows are overlapping 10-item windows: ~10x the positions per epoch).
Given valid examples, ``fit`` early-stops on their pool-ranking NDCG@5 (the tables' metric) and
restores the best epoch's weights. The vocabulary is every id in the training histories and
pools (index 0 pads, 1 stands for an unknown item). At scoring time a pool is ranked by the
next-item logit after the example's own history (``meta["history_ids"]``: the same 10 items
the LLM sees); candidates the training split never showed score ``-inf`` (ranked last, ties by
candidate number), and unknown history items are dropped.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from fgrpo.baselines.scorers import order_by_score
from fgrpo.config.commands import TUNED  # the tuned sizes live with the defaults of every command
from fgrpo.config.progress import Progress
from fgrpo.data.schema import Example

PAD, UNK = 0, 1
SeqKind = Literal["sasrec", "gru4rec"]


def history_ids(example: Example) -> list[str]:
    """``meta["history_ids"]`` as strings; a clear error when the data predates it."""
    history = example.meta.get("history_ids") if isinstance(example.meta, dict) else None
    if not isinstance(history, (list, tuple)):
        raise ValueError(
            f"example {example.id!r} has no meta['history_ids'] (the item ids of its history); "
            "the sequential baselines need them: re-run `fgrpo prepare` (the MovieLens and "
            "LLaRA builders write them) or add them to your JSONL"
        )
    return [str(h) for h in history]


class ItemVocab:
    """Item id -> embedding row; rows 0 (padding) and 1 (unknown) are reserved."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.index: dict[str, int] = {}
        for item in ids:
            self.index.setdefault(item, len(self.index) + 2)

    def __len__(self) -> int:
        return len(self.index) + 2

    @classmethod
    def from_examples(cls, examples: Sequence[Example]) -> ItemVocab:
        ids: list[str] = []
        for ex in examples:
            ids.extend(history_ids(ex))
            ids.extend(c.id for c in ex.candidates)
        return cls(ids)


def left_pad(seqs: Sequence[Sequence[int]], length: int | None = None) -> torch.Tensor:
    """``(len(seqs), length)`` long tensor, each row right-aligned (most recent last)."""
    length = length if length is not None else max((len(s) for s in seqs), default=1)
    out = torch.full((len(seqs), max(1, length)), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            out[i, out.shape[1] - len(s) :] = torch.as_tensor(list(s)[-out.shape[1] :])
    return out


class _SelfAttentionBlock(nn.Module):
    """Pre-norm causal self-attention + point-wise feed-forward, as in SASRec."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-8)
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.ffn_norm = nn.LayerNorm(hidden, eps=1e-8)
        self.ffn = nn.Sequential(
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        q = self.attn_norm(x)
        # SASRec normalizes the query only; keys/values are the residual stream
        x = q + self.attn(q, x, x, attn_mask=mask, need_weights=False)[0]
        x = x + self.ffn(self.ffn_norm(x))
        return x * keep


class SASRec(nn.Module):
    """Kang & McAuley (2018); input ``(B, L)`` left-padded ids, output ``(B, L, hidden)``."""

    def __init__(
        self, num_items: int, hidden: int = 64, blocks: int = 2, heads: int = 1,
        max_len: int = 50, dropout: float = 0.2,
    ) -> None:  # fmt: skip
        super().__init__()
        self.heads, self.max_len = heads, max_len
        self.item_emb = nn.Embedding(num_items, hidden, padding_idx=PAD)
        self.pos_emb = nn.Embedding(max_len, hidden)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_SelfAttentionBlock(hidden, heads, dropout) for _ in range(blocks))
        self.final_norm = nn.LayerNorm(hidden, eps=1e-8)
        # Xavier-initialized embeddings, as in the authors' TensorFlow code (PyTorch's N(0, 1)
        # default makes the initial tied-embedding logits huge: a first-epoch loss of ~26)
        nn.init.xavier_normal_(self.item_emb.weight)
        nn.init.xavier_normal_(self.pos_emb.weight)

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        seqs = seqs[:, -self.max_len :]
        length = seqs.shape[1]
        keep = (seqs != PAD).unsqueeze(-1).to(self.item_emb.weight.dtype)
        # positions count back from the most recent item, so "last" means the same
        # embedding whatever the padded length of the batch
        pos = torch.arange(self.max_len - length, self.max_len, device=seqs.device)
        x = self.item_emb(seqs) * math.sqrt(self.item_emb.embedding_dim) + self.pos_emb(pos)
        x = self.dropout(x) * keep
        causal = torch.ones(length, length, dtype=torch.bool, device=seqs.device).triu(1)
        # also hide padding keys, but let every query see itself so that a padded row
        # (which attends to padding only) stays finite instead of a softmax over nothing
        pad_key = (seqs == PAD).unsqueeze(1) & ~torch.eye(length, dtype=torch.bool, device=seqs.device)
        mask = (causal.unsqueeze(0) | pad_key).repeat_interleave(self.heads, dim=0)
        for block in self.blocks:
            x = block(x, mask, keep)
        return self.final_norm(x)


class GRU4Rec(nn.Module):
    """Hidasi et al. (2016), cross-entropy variant; same input/output shapes as :class:`SASRec`."""

    def __init__(self, num_items: int, hidden: int = 64, layers: int = 1, dropout: float = 0.2) -> None:
        super().__init__()
        self.item_emb = nn.Embedding(num_items, hidden, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True)
        self.proj = nn.Linear(hidden, hidden)
        nn.init.xavier_normal_(self.item_emb.weight)  # as RecBole's GRU4Rec

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        length = seqs.shape[1]
        lengths = (seqs != PAD).sum(1).clamp(min=1)
        # the GRU must start on the first real item, not run through the left padding:
        # shift each row to the left, pack, run, and shift the outputs back
        ar = torch.arange(length, device=seqs.device)
        shift = (length - lengths).unsqueeze(1)
        right = seqs.gather(1, (ar + shift) % length)
        x = self.dropout(self.item_emb(right))
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=length)
        out = out.gather(1, ((ar - shift) % length).unsqueeze(-1).expand(-1, -1, out.shape[-1]))
        return self.proj(out)


TrainOn = Literal["users", "windows"]


@dataclass
class SeqConfig:
    """Hyperparameters of :class:`SequentialScorer`.

    ``hidden``, ``blocks``, ``dropout`` and ``lr`` left at None take the model's tuned value
    (:data:`TUNED`: the best valid NDCG@5 of the search in ``scripts/tune_sequential.py``,
    ``docs/results/baselines_ml100k/tuning.json``).

    Training runs at most ``epochs`` passes; when ``fit`` is given valid examples and
    ``patience > 0`` it evaluates the valid NDCG@5 (the tables' pool-ranking metric) every
    ``eval_every`` epochs, stops after ``patience`` evaluations without a better one, and
    restores the weights of the best evaluation.

    ``train_on``: ``"users"`` (default) rebuilds each user's chronological sequence from the
    training rows (``meta["user"]`` and ``meta["position"]``: the training rows of ML-100K
    are overlapping 10-item windows of those sequences) and trains on it once, cut into
    chunks of ``max_len + 1`` items, as the SASRec authors do: every transition counted once,
    ~10x fewer positions per epoch than the windows; rows without a user/position are their
    own sequence. ``"windows"``: every row's ``history + [target]`` as given.
    """

    hidden: int | None = None  # None: TUNED[kind]
    blocks: int | None = None  # SASRec self-attention blocks; GRU4Rec GRU layers. None: TUNED[kind]
    heads: int = 1
    max_len: int = 50  # items per training chunk and most recent history items scored
    dropout: float | None = None  # None: TUNED[kind]
    epochs: int = 200  # the most epochs (early stopping usually ends sooner)
    lr: float | None = None  # Adam; None: TUNED[kind]
    batch_size: int = 128
    seed: int = 0
    patience: int = 10  # evaluations without a better valid NDCG@5 before stopping; 0: no early stopping
    eval_every: int = 1  # epochs between valid evaluations
    train_on: TrainOn = "users"

    def resolved(self, kind: SeqKind) -> SeqConfig:
        """A copy with every None field set to the tuned value of ``kind``."""
        tuned = TUNED[kind]
        return replace(self, **{k: v for k, v in tuned.items() if getattr(self, k) is None})


def user_sequences(examples: Sequence[Example]) -> list[list[str]]:
    """Each user's chronological item sequence, rebuilt from training rows alone.

    A row with ``meta["user"]`` and ``meta["position"]`` (the index of its target in the
    user's sequence; its history lies just before; ``meta["target_ids"]``: several targets
    from there on, in order) places its history and target(s) there; the
    rows of one user are merged. Rows without them are their own sequence
    (``history + relevant ids``). A gap in a user's positions splits the sequence there.
    """
    by_user: dict[str, dict[int, str]] = {}
    loose: list[list[str]] = []
    for ex in examples:
        meta = ex.meta if isinstance(ex.meta, dict) else {}
        hist = history_ids(ex)
        targets = [str(t) for t in meta.get("target_ids") or []] or [cid for cid, grade in ex.relevance.items() if grade > 0]
        user, pos = meta.get("user"), meta.get("position")
        if user is None or not isinstance(pos, int) or (len(targets) != 1 and "target_ids" not in meta):
            loose.append([*hist, *targets])
            continue
        slots = by_user.setdefault(str(user), {})
        for offset, item in enumerate([*hist, *targets]):
            slots.setdefault(pos - len(hist) + offset, item)
    out: list[list[str]] = []
    for slots in by_user.values():
        run: list[str] = []
        prev = None
        for index in sorted(slots):
            if prev is not None and index != prev + 1:
                out.append(run)
                run = []
            run.append(slots[index])
            prev = index
        out.append(run)
    return [s for s in out + loose if s]


def chunks(seq: Sequence[int], max_len: int) -> list[list[int]]:
    """``seq`` cut from the end into pieces of at most ``max_len + 1`` items that share their
    boundary item, so each transition ``seq[i] -> seq[i+1]`` is in exactly one piece."""
    out = []
    end = len(seq)
    while end > 1:
        out.append(list(seq[max(0, end - max_len - 1) : end]))
        end -= max_len
    return out


SAVED_FORMAT = "fgrpo-sequential-scorer-1"


def _read_saved(path: Path) -> dict[str, Any]:
    """A file written by :meth:`SequentialScorer.save`, read with ``weights_only=True`` (no
    code runs from it); a ValueError names the file when it is something else."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != SAVED_FORMAT:
        raise ValueError(f"{path}: not a fitted sasrec/gru4rec scorer saved by fgrpo eval")
    return state


class SequentialScorer:
    """Rank a pool by a SASRec or GRU4Rec next-item logit after ``meta["history_ids"]``.

    ``fit(train_examples, valid_examples)`` builds the vocabulary and trains from scratch
    (seeded: the same data and config give the same weights on one machine), early-stopping
    on the valid NDCG@5 when valid examples are given. It records ``train_seconds``,
    ``train_loss`` (mean cross-entropy of the last epoch), ``curve`` (one dict per epoch:
    epoch, train_loss, seconds, and valid NDCG@5 / Hit@1 where evaluated), ``best_epoch`` and
    ``best_valid`` (the restored epoch and its valid NDCG@5), ``stopped_early``.
    """

    def __init__(self, kind: SeqKind, config: SeqConfig | None = None) -> None:
        if kind not in ("sasrec", "gru4rec"):
            raise ValueError(f"kind must be 'sasrec' or 'gru4rec', got {kind!r}")
        self.kind: SeqKind = kind
        self.name = kind
        self.config = (config or SeqConfig()).resolved(kind)
        self.vocab: ItemVocab | None = None
        self.model: nn.Module | None = None
        self.train_seconds = 0.0
        self.train_loss = float("nan")
        self.curve: list[dict[str, float]] = []
        self.best_epoch = 0
        self.best_valid = float("nan")
        self.stopped_early = False
        self._hidden_cache: dict[tuple[int, ...], torch.Tensor] = {}

    def _build(self, num_items: int) -> nn.Module:
        c = self.config
        assert c.hidden is not None and c.blocks is not None and c.dropout is not None
        if self.kind == "sasrec":
            return SASRec(num_items, c.hidden, c.blocks, c.heads, c.max_len, c.dropout)
        return GRU4Rec(num_items, c.hidden, c.blocks, c.dropout)

    def _encode_history(self, example: Example) -> list[int]:
        assert self.vocab is not None
        known = [self.vocab.index[h] for h in history_ids(example) if h in self.vocab.index]
        return known[-self.config.max_len :] or [UNK]

    def training_sequences(self, examples: Sequence[Example]) -> list[list[int]]:
        """The id sequences trained on, each at most ``max_len + 1`` long: per user chunks
        (``train_on="users"``) or ``history + [target]`` per (example, relevant id)."""
        assert self.vocab is not None
        index, max_len = self.vocab.index, self.config.max_len
        if self.config.train_on == "users":
            return [ch for seq in user_sequences(examples) for ch in chunks([index[i] for i in seq], max_len)]
        out = []
        for ex in examples:
            hist = [index[h] for h in history_ids(ex)]
            for cid, grade in ex.relevance.items():
                if grade > 0 and hist:  # an empty history has no next-item transition
                    out.append([*hist, index[cid]][-(max_len + 1) :])
        return out

    def evaluate(self, examples: Sequence[Example], ks: Sequence[int] = (1, 5)) -> dict[str, float]:
        """Pool-ranking metrics of the current weights on ``examples`` (the tables' metric:
        :func:`fgrpo.evaluation.metrics.compute_metrics` of the top-5 ranking)."""
        from fgrpo.baselines.scorers import rank_examples
        from fgrpo.evaluation.metrics import compute_metrics

        assert self.model is not None
        was_training = self.model.training
        self.model.eval()
        self._hidden_cache.clear()
        rows = rank_examples(self, examples, slate_size=max(ks), rank_size=max(ks))
        self._hidden_cache.clear()
        self.model.train(was_training)
        return compute_metrics([r["ranking"] for r in rows], [ex.grades() for ex in examples], ks)

    def fit(self, train_examples: Sequence[Example], valid_examples: Sequence[Example] | None = None) -> SequentialScorer:
        c = self.config
        start = time.perf_counter()
        self.vocab = ItemVocab.from_examples(train_examples)
        seqs = self.training_sequences(train_examples)
        if not seqs:
            raise ValueError(f"{self.kind}: no training sequence (every training history is empty)")
        data = left_pad(seqs)
        early = bool(valid_examples) and c.patience > 0
        self.curve, self.stopped_early = [], False
        self.best_epoch, self.best_valid = 0, float("nan")
        best_state: dict[str, torch.Tensor] | None = None
        # seed init, dropout and shuffling without touching the caller's global RNG
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            model = self._build(len(self.vocab))
            self.model = model
            gen = torch.Generator().manual_seed(c.seed)
            opt = torch.optim.Adam(model.parameters(), lr=c.lr, betas=(0.9, 0.98))
            model.train()
            bad = 0
            bar = Progress(c.epochs, self.kind, unit="epoch")
            for epoch in range(1, c.epochs + 1):
                total, count = 0.0, 0
                for idx in torch.randperm(len(data), generator=gen).split(c.batch_size):
                    batch = data[idx]
                    # trim the columns that are padding in every row of this batch
                    batch = batch[:, int((batch != PAD).any(0).nonzero()[0]) :]
                    inputs, targets = batch[:, :-1], batch[:, 1:]
                    real = targets != PAD
                    hidden = model(inputs)[real]
                    logits = hidden @ model.item_emb.weight.T
                    loss = nn.functional.cross_entropy(logits, targets[real])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * int(real.sum())
                    count += int(real.sum())
                self.train_loss = total / max(1, count)
                point: dict[str, float] = {"epoch": epoch, "train_loss": self.train_loss}
                if early and (epoch % c.eval_every == 0 or epoch == c.epochs):
                    assert valid_examples is not None
                    valid = self.evaluate(valid_examples)
                    point.update({"valid_NDCG@5": valid["NDCG@5"], "valid_Hit@1": valid["Hit@1"]})
                    if best_state is None or valid["NDCG@5"] > self.best_valid:
                        self.best_epoch, self.best_valid, bad = epoch, valid["NDCG@5"], 0
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    else:
                        bad += 1
                point["seconds"] = round(time.perf_counter() - start, 2)
                self.curve.append(point)
                bar.update(1, loss=self.train_loss, valid_NDCG5=point.get("valid_NDCG@5"))
                if early and bad >= c.patience:
                    self.stopped_early = epoch < c.epochs
                    bar.write(f"[{self.kind}] early stop at epoch {epoch}: best valid NDCG@5 {self.best_valid:.4f} at epoch {self.best_epoch}")
                    break
            bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        else:
            self.best_epoch = len(self.curve)
        model.eval()
        self._hidden_cache.clear()
        self.train_seconds = time.perf_counter() - start
        return self

    def training_digest(self, train_examples: Sequence[Example]) -> str:
        """16 hex digits of what a fit on ``train_examples`` trains on (the vocabulary in row
        order and every training sequence): :meth:`load` checks a saved fit against it."""
        vocab = ItemVocab.from_examples(train_examples)
        saved, self.vocab = self.vocab, vocab
        try:
            seqs = self.training_sequences(train_examples)
        finally:
            self.vocab = saved
        payload = json.dumps([list(vocab.index), seqs], separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def save(self, path: str | Path, train_examples: Sequence[Example]) -> Path:
        """The fitted scorer (weights, vocabulary, config, training curve) in one file,
        tensors and plain values only, so :meth:`load` reads it with ``weights_only=True``
        (no code runs from the file)."""
        if self.model is None or self.vocab is None:
            raise RuntimeError(f"{self.kind}: save() called before fit()")
        state = {
            "format": SAVED_FORMAT, "kind": self.kind, "config": asdict(self.config),
            "vocab": list(self.vocab.index), "train_digest": self.training_digest(train_examples),
            "state_dict": self.model.state_dict(), "train_seconds": self.train_seconds, "train_loss": self.train_loss,
            "curve": self.curve, "best_epoch": self.best_epoch, "best_valid": self.best_valid, "stopped_early": self.stopped_early,
        }  # fmt: skip
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
        return path

    def load(self, path: str | Path, train_examples: Sequence[Example]) -> SequentialScorer:
        """The fit saved by :meth:`save`, in place of :meth:`fit` on ``train_examples``: it must
        be this kind, with this config (seed included), fitted on the same training data, or
        a ValueError names the file and what differs."""
        path = Path(path)
        state = _read_saved(path)
        if state["kind"] != self.kind:
            raise ValueError(f"{path}: a {state['kind']} scorer, this run is {self.kind}")
        mine = asdict(self.config)
        diff = sorted(k for k in mine if state["config"].get(k) != mine[k])
        if diff:
            raise ValueError(f"{path}: fitted with other keys: " + ", ".join(f"{k} {state['config'].get(k)!r} (here {mine[k]!r})" for k in diff))
        if state["train_digest"] != self.training_digest(train_examples):
            raise ValueError(f"{path}: fitted on other training data than this run's train split")
        self.vocab = ItemVocab(state["vocab"])
        self.model = self._build(len(self.vocab))
        self.model.load_state_dict(state["state_dict"])
        self.model.eval()
        self._hidden_cache.clear()
        for key in ("train_seconds", "train_loss", "curve", "best_epoch", "best_valid", "stopped_early"):
            setattr(self, key, state[key])
        return self

    @classmethod
    def from_saved(cls, path: str | Path, train_examples: Sequence[Example]) -> SequentialScorer:
        """The fit saved by :meth:`save`, of the kind and with the config the file records
        (:meth:`load` still checks that it was fitted on ``train_examples``)."""
        state = _read_saved(Path(path))
        return cls(state["kind"], SeqConfig(**state["config"])).load(path, train_examples)

    @staticmethod
    def item_embeddings(path: str | Path) -> dict[str, torch.Tensor]:
        """Item id -> the item's embedding row of a fit saved by :meth:`save` (read with
        ``weights_only=True``): what ``fgrpo pretrain-items item_embeddings_from=`` starts from."""
        state = _read_saved(Path(path))
        weight = state["state_dict"]["item_emb.weight"]
        return {item: weight[row] for item, row in ItemVocab(state["vocab"]).index.items()}

    @torch.no_grad()
    def _last_hidden(self, histories: Sequence[tuple[int, ...]]) -> None:
        assert self.model is not None
        missing = list(dict.fromkeys(h for h in histories if h not in self._hidden_cache))
        for s in range(0, len(missing), 256):
            chunk = missing[s : s + 256]
            last = self.model(left_pad(chunk))[:, -1]
            self._hidden_cache.update(zip(chunk, last, strict=True))

    def prepare(self, examples: Sequence[Example]) -> None:
        """Encode the histories of ``examples`` in batches (``rank`` then only looks up)."""
        self._last_hidden([tuple(self._encode_history(ex)) for ex in examples])

    @torch.no_grad()
    def scores(self, example: Example) -> list[float]:
        """Next-item logit of each candidate (``-inf`` for ids unseen in training)."""
        if self.model is None or self.vocab is None:
            raise RuntimeError(f"{self.kind}: scores() called before fit()")
        key = tuple(self._encode_history(example))
        self._last_hidden([key])
        weight: Any = self.model.item_emb.weight
        h = self._hidden_cache[key]
        rows = [self.vocab.index.get(c.id) for c in example.candidates]
        return [float(weight[r] @ h) if r is not None else float("-inf") for r in rows]

    def rank(self, example: Example) -> list[int]:
        return order_by_score(self.scores(example))
