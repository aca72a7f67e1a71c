"""Two-step decoding: a selector writes the slate, then a ranker ranks only that slate.

The baseline of "select, then rank" as two separate answers, by one model prompted twice
(zero-shot two-step) or by two models trained apart (Decoupled SFT: ``fgrpo sft
target=slate`` and ``target=rank``). Step 1 prompts for ``<SLATE>…</SLATE>`` and stops at
``</SLATE>``; step 2 shows the ranker only the slate's candidates (with their pool numbers)
and asks for ``<RANK>…</RANK>``. The two answers are joined into one completion,
``<SLATE>…</SLATE>`` + ``<RANK>…</RANK>``, which the one-pass parser and metrics score: so
a two-step row of a table is scored by exactly the code that scores every other row.

When step 1's slate is invalid (free decoding), step 2 is skipped: there is nothing to
rank, and the joined completion is the slate answer alone, which the parser counts as an
invalid output (``missing_rank_tags`` on top of the slate's own errors).
"""

from __future__ import annotations

from typing import Any

from fgrpo.config.progress import Progress
from fgrpo.data.schema import Example
from fgrpo.evaluation.evaluate import prediction_row
from fgrpo.format.completion import RANK_CLOSE, SLATE_CLOSE, parse_completion
from fgrpo.format.constrained import decoding_constraint
from fgrpo.format.items import candidate_labels
from fgrpo.format.prompts import Style, encode_prompt
from fgrpo.format.spans import decode_completions
from fgrpo.rollout.engine import generate


def slate_answer(text: str) -> str:
    """Step 1's answer up to and including ``</SLATE>`` (where decoding stopped; a token
    that ran past it carries nothing step 2 should see). Unchanged when there is none."""
    end = text.find(SLATE_CLOSE)
    return text if end < 0 else text[: end + len(SLATE_CLOSE)]


def join_answers(slate_part: str, rank_part: str | None) -> str:
    """The one-pass completion the two answers make (the slate alone when step 2 was skipped)."""
    return slate_part + (rank_part or "")


def predict_two_step(
    selector: Any,
    selector_tokenizer: Any,
    ranker: Any,
    ranker_tokenizer: Any,
    examples: list[Example],
    max_slate: int,
    max_rank: int,
    max_new_tokens: int,
    batch_size: int = 8,
    progress: bool = True,
    constrained: bool = False,
    style: Style = "standard",
) -> list[dict[str, Any]]:
    """One prediction per example, as :func:`fgrpo.evaluation.evaluate.predict` returns
    them, plus the raw answers of the two steps (``selector_completion``, ``ranker_completion``:
    None when skipped). Greedy decoding in both steps; ``constrained`` constrains both (step 2
    to distinct members of step 1's slate)."""
    out: list[dict[str, Any]] = []
    bar = Progress(len(examples), "eval two-step", every=max(1, 10 // max(1, batch_size)) * batch_size, unit="example", enabled=progress)
    for s in range(0, len(examples), batch_size):
        chunk = examples[s : s + batch_size]
        prompts = [encode_prompt(selector_tokenizer, ex, max_slate, max_rank, phase="slate", style=style) for ex in chunk]
        constraint = decoding_constraint(selector_tokenizer, chunk, max_slate, max_rank, "slate") if constrained else None
        rolls = generate(selector, selector_tokenizer, prompts, 1, max_new_tokens, temperature=0.0,
                         stop_string=SLATE_CLOSE, constraint=constraint)  # fmt: skip
        raw_slates = decode_completions(selector_tokenizer, rolls.completions)
        slate_parts = [slate_answer(t) for t in raw_slates]
        parsed = [
            parse_completion(t, ex.num_candidates, max_slate, max_rank, candidate_labels(selector_tokenizer, ex))
            for t, ex in zip(slate_parts, chunk, strict=True)
        ]  # fmt: skip
        todo = [i for i, p in enumerate(parsed) if p.slate_valid]  # rows with something to rank
        ranks: list[str | None] = [None] * len(chunk)
        if todo:
            slates = [parsed[i].slate for i in todo]
            prompts = [
                encode_prompt(ranker_tokenizer, chunk[i], max_slate, max_rank, phase="rank", slate=sl, style=style)
                for i, sl in zip(todo, slates, strict=True)
            ]
            constraint = (
                decoding_constraint(ranker_tokenizer, [chunk[i] for i in todo], max_slate, max_rank, "rank", slates)
                if constrained else None
            )  # fmt: skip
            rolls = generate(ranker, ranker_tokenizer, prompts, 1, max_new_tokens, temperature=0.0,
                             stop_string=RANK_CLOSE, constraint=constraint)  # fmt: skip
            for i, text in zip(todo, decode_completions(ranker_tokenizer, rolls.completions), strict=True):
                ranks[i] = text
        for ex, raw, part, rank in zip(chunk, raw_slates, slate_parts, ranks, strict=True):
            row = prediction_row(ex, join_answers(part, rank), max_slate, max_rank, candidate_labels(ranker_tokenizer, ex))
            out.append({**row, "selector_completion": raw, "ranker_completion": rank})
        bar.update(len(chunk))
    bar.close()
    return out
