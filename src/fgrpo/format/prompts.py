"""Prompts: the query, the numbered pool and the answer format, per task.

The prompt goes through the tokenizer's chat template when it has one (instruction-tuned
models expect it); a tokenizer without one (the tiny test models) gets the plain text.
"""

from __future__ import annotations

from typing import Any

from fgrpo.data.schema import Example

SYSTEM_MESSAGE = "You select and rank candidates."

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


def prompt_text(example: Example, max_slate: int = 10, max_rank: int = 5) -> str:
    """The user message: query, numbered candidates, and the exact answer format."""
    intro, goal = TASK_INTROS.get(example.task, TASK_INTROS["generic"])
    if example.task == "toy":  # short prompt for tiny word-level models; the number follows
        # its text so that a marked number token sees its mark right before it
        pool = " ".join(f"{c.text} [{k}]" for k, c in enumerate(example.candidates, start=1))
        return f"{intro.format(q=example.query)} : {pool} answer :"
    pool = "\n".join(f"[{k}] {c.text}" for k, c in enumerate(example.candidates, start=1))
    return (
        f"{intro.format(q=example.query)}\n\nCandidates:\n{pool}\n\n"
        f"Select up to {max_slate} candidates that are {goal}, then rank up to {max_rank} of "
        "them, best first. Refer to candidates by their number. Answer exactly in this form: "
        "<SLATE>[i] [j] ...</SLATE><RANK>[i] > [j] > ...</RANK>"
    )


def render_prompt(tokenizer: Any, example: Example, max_slate: int = 10, max_rank: int = 5) -> str:
    """The full prompt string, through the chat template when the tokenizer has one."""
    from fgrpo.format.items import item_prompt, uses_item_tokens

    if uses_item_tokens(tokenizer):  # one token per item: no words (fgrpo.format.items)
        return item_prompt(example)
    text = prompt_text(example, max_slate, max_rank)
    if getattr(tokenizer, "chat_template", None):
        # a one-line system message: templates that add a default one (SmolLM2's is ~25
        # tokens) would otherwise pay for it in every prompt of every rollout
        messages = [{"role": "system", "content": SYSTEM_MESSAGE}, {"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text


def encode_prompt(tokenizer: Any, example: Example, max_slate: int = 10, max_rank: int = 5) -> list[int]:
    """Prompt token ids (the chat template carries its own special tokens)."""
    text = render_prompt(tokenizer, example, max_slate, max_rank)
    return tokenizer(text, add_special_tokens=not getattr(tokenizer, "chat_template", None))["input_ids"]
