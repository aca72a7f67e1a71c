"""fgrpo: train one LLM to generate a candidate slate and rank it in a single pass (F-GRPO).

Public API: :func:`parse_completion`, :func:`render_completion`, :class:`Ranker`.
"""

from fgrpo.format.completion import ParsedCompletion, parse_completion, render_completion

__all__ = ["ParsedCompletion", "Ranker", "parse_completion", "render_completion"]
__version__ = "0.1.0"


def __getattr__(name: str):  # Ranker pulls in torch/transformers: import it only when asked
    if name == "Ranker":
        from fgrpo.ranker import Ranker

        return Ranker
    raise AttributeError(name)
