"""Prompts: the query, the numbered pool and the answer format, per task.

The prompt goes through the tokenizer's chat template when it has one (instruction-tuned
models expect it); a tokenizer without one (the tiny test models) gets the plain text.

Three phases of prompt (``phase``):

- ``both`` (the default, every trained model): select a slate, then rank part of it, in one
  answer ``<SLATE>…</SLATE><RANK>…</RANK>``;
- ``slate``: step 1 of the two-step pipeline (fgrpo.evaluation.two_step): the slate only;
- ``rank``: step 2: the pool shown is only the slate chosen in step 1 (candidates keep their
  pool numbers, so the two answers join into one completion with no renumbering), and the
  answer is the ranking only, ``<RANK>…</RANK>``.

Two styles (``style``): ``standard``, the terse instruction the trained models were trained
on (changing it would change every trained model's input), and ``zeroshot``, for an
instruction-tuned model that has never seen the format: each step spelled out, and one
worked example of the answer. The toy task's prompt is the same in both styles (its tiny
word-level models cannot read instructions).
"""

from __future__ import annotations

from typing import Any, Literal

from fgrpo.data.schema import Example

SYSTEM_MESSAGE = "You select and rank candidates."

Phase = Literal["both", "slate", "rank"]
Style = Literal["standard", "zeroshot"]
PHASES = ("both", "slate", "rank")
STYLES = ("standard", "zeroshot")

# What the query is and what "relevant" means, per task; {q} is the query text.
TASK_INTROS: dict[str, tuple[str, str]] = {
    "movies": (
        "You are a movie recommender. The user watched these movies, oldest first:\n{q}",
        "the movies the user is most likely to watch next",
    ),
    "music": (
        "You are a music recommender. The user listened to these artists, oldest first:\n{q}",
        "the artists the user is most likely to listen to next",
    ),
    "games": (
        "You are a game recommender. The user played these games, oldest first:\n{q}",
        "the games the user is most likely to play next",
    ),
    "passages": (
        "Question: {q}",
        "the passages needed to answer the question",
    ),
    "toy": ("{q}", "the marked items"),
    "generic": ("Query: {q}", "the candidates most relevant to the query"),
}

# One worked example per phase for the zero-shot style: a small model copies a shown answer
# far more reliably than it follows a described one. The numbers are illustrative only.
_EXAMPLE = {
    "both": "<SLATE>[4] [11] [2]</SLATE><RANK>[11] > [4] > [2]</RANK>",
    "slate": "<SLATE>[4] [11] [2]</SLATE>",
    "rank": "<RANK>[11] > [4] > [2]</RANK>",
}


def _sentence(text: str) -> str:
    """Capitalized, with a full stop (str.capitalize would lower-case the tags)."""
    return text[:1].upper() + text[1:] + "."


def _instructions(phase: Phase, style: Style, goal: str, max_slate: int, max_rank: int) -> str:
    """The task sentence(s) after the pool: what to answer, and its exact form."""
    if style == "standard":
        if phase == "both":
            return (
                f"Select up to {max_slate} candidates that are {goal}, then rank up to {max_rank} of "
                "them, best first. Refer to candidates by their number. Answer exactly in this form: "
                "<SLATE>[i] [j] ...</SLATE><RANK>[i] > [j] > ...</RANK>"
            )
        if phase == "slate":
            return (
                f"Select up to {max_slate} candidates that are {goal}. Refer to candidates by their "
                "number. Answer exactly in this form: <SLATE>[i] [j] ...</SLATE>"
            )
        return (
            f"Rank up to {max_rank} of these candidates, best first; the best are {goal}. Refer to "
            "candidates by their number. Answer exactly in this form: <RANK>[i] > [j] > ...</RANK>"
        )
    select = (
        f"select up to {max_slate} candidates that are {goal}, and write their numbers in square "
        "brackets between <SLATE> and </SLATE>"
    )
    rank = (
        f"rank up to {max_rank} {{which}}, best first: write their numbers in square brackets, "
        "separated by >, between <RANK> and </RANK>"
    )
    if phase == "both":
        task = f"Answer in two steps. Step 1: {select}. Step 2: {rank.format(which='of the selected candidates')}."
        example = "if you select candidates 4, 11 and 2, and 11 is the best, then 4, then 2, answer"
    elif phase == "slate":
        task = _sentence(select)
        example = "if you select candidates 4, 11 and 2, answer"
    else:
        task = f"The best candidates are {goal}. " + _sentence(rank.format(which="of these candidates"))
        example = "if 11 is the best, then 4, then 2, answer"
    return f"{task} Write only the answer, nothing else. For example, {example}:\n{_EXAMPLE[phase]}"


def prompt_text(
    example: Example,
    max_slate: int,
    max_rank: int,
    *,
    phase: Phase = "both",
    slate: list[int] | None = None,
    style: Style = "standard",
) -> str:
    """The user message: query, numbered candidates, and the exact answer format.

    ``slate`` (phase ``rank`` only, required there): the candidate numbers to show, listed in
    pool order whatever order the slate was written in (so no position gives the answer away).
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if (phase == "rank") != (slate is not None):
        raise ValueError("a slate is given exactly for phase 'rank' (the candidates the ranker sees)")
    shown = list(range(1, example.num_candidates + 1)) if slate is None else sorted(set(slate))
    if any(not 1 <= k <= example.num_candidates for k in shown):
        raise ValueError(f"slate {slate} names candidates outside 1..{example.num_candidates} ({example.id})")
    intro, goal = TASK_INTROS.get(example.task, TASK_INTROS["generic"])
    if example.task == "toy":  # short prompt for tiny word-level models; the number follows
        # its text so that a marked number token sees its mark right before it
        pool = " ".join(f"{example.candidates[k - 1].text} [{k}]" for k in shown)
        return f"{intro.format(q=example.query)} : {pool} answer :"
    pool = "\n".join(f"[{k}] {example.candidates[k - 1].text}" for k in shown)
    instructions = _instructions(phase, style, goal, max_slate, max_rank)
    return f"{intro.format(q=example.query)}\n\nCandidates:\n{pool}\n\n{instructions}"


def render_prompt(
    tokenizer: Any,
    example: Example,
    max_slate: int,
    max_rank: int,
    *,
    phase: Phase = "both",
    slate: list[int] | None = None,
    style: Style = "standard",
) -> str:
    """The full prompt string, through the chat template when the tokenizer has one."""
    from fgrpo.format.items import check_known_items, item_prompt, uses_item_tokens

    if uses_item_tokens(tokenizer):  # one token per item: no words (fgrpo.format.items)
        if style != "standard":
            raise ValueError("item-token models (id-tiny) have no instructions to vary: style='standard'")
        if phase not in PHASES or (phase == "rank") != (slate is not None):
            raise ValueError(f"phase must be one of {PHASES}, with a slate exactly for phase 'rank'")
        check_known_items(tokenizer, example)
        return item_prompt(example, slate)  # the slate phase's prompt is the one-pass prompt
    text = prompt_text(example, max_slate, max_rank, phase=phase, slate=slate, style=style)
    if getattr(tokenizer, "chat_template", None):
        # a one-line system message: templates that add a default one (SmolLM2's is ~25
        # tokens) would otherwise pay for it in every prompt of every rollout
        messages = [{"role": "system", "content": SYSTEM_MESSAGE}, {"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text


def encode_prompt(
    tokenizer: Any,
    example: Example,
    max_slate: int,
    max_rank: int,
    *,
    phase: Phase = "both",
    slate: list[int] | None = None,
    style: Style = "standard",
) -> list[int]:
    """Prompt token ids (the chat template carries its own special tokens)."""
    text = render_prompt(tokenizer, example, max_slate, max_rank, phase=phase, slate=slate, style=style)
    return tokenizer(text, add_special_tokens=not getattr(tokenizer, "chat_template", None))["input_ids"]
