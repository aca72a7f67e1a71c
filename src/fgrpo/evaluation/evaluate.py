"""Greedy decoding on a split, parsed and scored by the shared metric code."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fgrpo.config.progress import Progress
from fgrpo.data.schema import Example
from fgrpo.evaluation.metrics import ci95_halfwidth, error_analysis, per_example_metrics
from fgrpo.format.completion import parse_completion
from fgrpo.format.constrained import decoding_constraint
from fgrpo.format.items import candidate_labels
from fgrpo.format.prompts import Style, encode_prompt
from fgrpo.format.spans import decode_completions
from fgrpo.rollout.engine import generate


def prediction_row(
    example: Example, text: str, max_slate: int, max_rank: int, labels: list[str] | None = None
) -> dict[str, Any]:
    """One prediction from a completion: slate, ranking (empty when that phase is invalid), raw text.
    ``labels``: the candidates' item tokens for item-token models (fgrpo.format.items), else None."""
    p = parse_completion(text, example.num_candidates, max_slate, max_rank, labels)
    return {
        "id": example.id,
        "slate": p.slate if p.slate_valid else [],
        "ranking": p.ranking if p.rank_valid else [],
        "relevant": sorted(example.relevant_numbers()),
        "slate_valid": p.slate_valid,
        "rank_valid": p.rank_valid,
        "errors": p.errors,
        "completion": text,
    }


def prediction_with_ids(prediction: dict[str, Any], example: Example) -> dict[str, Any]:
    """A prediction row with the candidate ids next to the numbers (``candidate_ids``: the
    pool in order, so number k is ``candidate_ids[k-1]``; ``slate_ids``, ``ranking_ids``,
    ``relevant_ids``): a user can join it to their own data without this fgrpo's files."""
    if prediction.get("id") != example.id:
        raise ValueError(f"prediction of {prediction.get('id')!r} joined to example {example.id!r}")
    ids = [c.id for c in example.candidates]
    return {
        **prediction, "candidate_ids": ids,
        **{f"{key}_ids": [ids[k - 1] for k in prediction.get(key) or []] for key in ("slate", "ranking", "relevant")},
    }  # fmt: skip


def predict(
    model: Any,
    tokenizer: Any,
    examples: list[Example],
    max_slate: int,
    max_rank: int,
    max_new_tokens: int,
    batch_size: int = 8,
    progress: bool = True,
    constrained: bool = False,
    style: Style = "standard",
    log_every: int = 10,
    desc: str = "eval",
) -> list[dict[str, Any]]:
    """One prediction per example (:func:`prediction_row`) from one greedy answer each;
    ``style``: the prompt style (fgrpo.format.prompts; ``zeroshot`` for untrained models).
    ``progress``: a bar on a terminal, else a line every ``log_every`` examples' batches."""
    out: list[dict[str, Any]] = []
    bar = Progress(len(examples), desc, every=1, unit="example", enabled=progress)
    every = max(1, log_every // max(1, batch_size)) * batch_size  # a line about every log_every examples
    for s in range(0, len(examples), batch_size):
        chunk = examples[s : s + batch_size]
        prompts = [encode_prompt(tokenizer, ex, max_slate, max_rank, style=style) for ex in chunk]
        constraint = decoding_constraint(tokenizer, chunk, max_slate, max_rank) if constrained else None
        rolls = generate(model, tokenizer, prompts, 1, max_new_tokens, temperature=0.0, constraint=constraint)
        texts = decode_completions(tokenizer, rolls.completions)
        out.extend(
            prediction_row(ex, text, max_slate, max_rank, candidate_labels(tokenizer, ex))
            for ex, text in zip(chunk, texts, strict=True)
        )
        bar.every = every
        bar.update(len(chunk), valid=sum(p["slate_valid"] and p["rank_valid"] for p in out) / len(out))
    bar.close()
    return out


def score_predictions(
    predictions: list[dict[str, Any]], examples: list[Example], ks: tuple[int, ...] = (1, 3, 5)
) -> dict[str, Any]:
    """Ranking metrics (ir_measures), format validity and the slate-miss / rank-drop split."""
    grades = [ex.grades() for ex in examples]
    rankings = [p["ranking"] for p in predictions]
    per_example = per_example_metrics(rankings, grades, ks)
    n = max(1, len(predictions))
    metrics: dict[str, Any] = {key: sum(v) / n for key, v in per_example.items()}
    # how far the mean could move on another sample of the same size (normal approximation)
    metrics.update({f"ci95/{key}": ci95_halfwidth(v) for key, v in per_example.items()})
    metrics["format/valid_rate"] = sum(p["slate_valid"] and p["rank_valid"] for p in predictions) / n
    metrics["format/slate_valid_rate"] = sum(p["slate_valid"] for p in predictions) / n
    metrics["format/rank_valid_rate"] = sum(p["rank_valid"] for p in predictions) / n
    errors = Counter(e for p in predictions for e in p["errors"])
    metrics.update({f"parse_errors/{k}": v for k, v in sorted(errors.items())})
    analysis = error_analysis(rankings, [p["slate"] for p in predictions], grades, k=max(ks))
    metrics.update({f"errors@{max(ks)}/{k}": v for k, v in analysis.items() if k != "k"})
    metrics["num_examples"] = len(predictions)
    return metrics
