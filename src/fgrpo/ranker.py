"""Using a trained ranker: ``Ranker.from_pretrained(folder).rank(query, candidates)``.

A model folder written by fgrpo is a normal Hugging Face folder (LoRA adapters merged), so
any transformers code can load it; this class adds the prompt, greedy decoding, and the
parser, and maps candidate numbers back to your ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgrpo.data.schema import Candidate, Example
from fgrpo.evaluation.evaluate import predict


@dataclass
class RankResult:
    slate: list[str]  # candidate ids in the slate (empty when the slate was invalid)
    ranking: list[str]  # candidate ids, best first (empty when the ranking was invalid)
    valid: bool
    errors: list[str]
    completion: str


RANK_MAX_NEW_TOKENS = 96  # completion length for a model folder that does not record its own


class Ranker:
    def __init__(
        self, model: Any, tokenizer: Any, max_slate: int | None = None, max_rank: int | None = None,
        max_new_tokens: int | None = None, constrained: bool = False, prompt_style: str = "standard",
        log_every: int = 50,
    ) -> None:
        """``max_slate``/``max_rank`` (None: the defaults of ``fgrpo train``, the paper's 10 and 5),
        ``max_new_tokens`` (None: 96) and ``prompt_style``; :meth:`from_pretrained` fills them
        from the folder. ``log_every``: progress lines without a terminal (fgrpo.config.progress)."""
        from fgrpo.config.commands import DataOptions

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_slate = DataOptions.max_slate if max_slate is None else max_slate
        self.max_rank = DataOptions.max_rank if max_rank is None else max_rank
        self.max_new_tokens = RANK_MAX_NEW_TOKENS if max_new_tokens is None else max_new_tokens
        self.constrained = constrained  # decode only valid outputs (fgrpo.format.constrained)
        if prompt_style not in ("standard", "zeroshot"):
            raise ValueError(f"prompt_style must be 'standard' or 'zeroshot', got {prompt_style!r}")
        self.prompt_style = prompt_style
        self.log_every = log_every

    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: str = "float32", threads: int = 0, **kwargs: Any) -> Ranker:
        """Load a model folder. The parser limits, the prompt style and the completion length
        are the folder's (its ``fgrpo.json``: how it was trained to answer), else this class's
        defaults; a ``max_slate``/``max_rank``/``prompt_style`` given here that contradicts the
        folder is a ConfigError; ``max_new_tokens`` and ``constrained`` are free, as in
        ``fgrpo eval`` (``constrained`` unset: :func:`~fgrpo.models.answer_format.default_constrained`). ``threads`` > 0: torch's CPU threads (0: torch's default)."""
        import torch

        from fgrpo.models.answer_format import check_answer_format, default_constrained
        from fgrpo.models.loading import load_trained

        if threads > 0:
            torch.set_num_threads(threads)
        given = {k: v for k, v in kwargs.items() if k in ("max_slate", "max_rank", "prompt_style") and v is not None}
        record = check_answer_format(folder, given)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        kwargs.setdefault("constrained", default_constrained(record))  # unset: as the folder was trained
        if record is not None:
            for key in ("max_slate", "max_rank", "max_new_tokens", "prompt_style"):
                if record.get(key) is not None:
                    kwargs.setdefault(key, record[key])
        model, tokenizer = load_trained(str(folder), dtype)
        return cls(model, tokenizer, **kwargs)

    def rank_examples(self, examples: list[Example], batch_size: int = 8, progress: bool = False) -> list[RankResult]:
        """Greedy slate + ranking per example, candidate numbers mapped back to ids."""
        empty = [ex.id for ex in examples if not ex.candidates]
        if empty:
            raise ValueError(f"example {empty[0]!r}: the candidate pool is empty; there is nothing to rank")
        preds = predict(
            self.model, self.tokenizer, examples, self.max_slate, self.max_rank, self.max_new_tokens, batch_size, progress,
            constrained=self.constrained, style=self.prompt_style, log_every=self.log_every, desc="rank",  # type: ignore[arg-type]
        )
        out = []
        for ex, p in zip(examples, preds, strict=True):
            ids = [c.id for c in ex.candidates]
            out.append(RankResult(
                slate=[ids[k - 1] for k in p["slate"]],
                ranking=[ids[k - 1] for k in p["ranking"]],
                valid=p["slate_valid"] and p["rank_valid"],
                errors=p["errors"],
                completion=p["completion"],
            ))
        return out

    def rank(self, query: str, candidates: list[str] | list[tuple[str, str]], task: str = "generic") -> RankResult:
        """Rank one pool. ``candidates``: texts (ids become "1".."N") or (id, text) pairs."""
        pool = [Candidate(str(i), c) if isinstance(c, str) else Candidate(str(c[0]), c[1]) for i, c in enumerate(candidates, start=1)]
        ex = Example(id="query", query=query, candidates=pool, relevance={}, task=task)
        return self.rank_examples([ex])[0]
