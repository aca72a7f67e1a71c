"""Old import path of ``fgrpo eval``: the command is :mod:`fgrpo.commands.eval`, its config
:class:`fgrpo.config.commands.EvalConfig`."""

from fgrpo.commands.eval import LLM_METHODS, TRAINED_METHODS, load_split, run_eval  # noqa: F401
from fgrpo.config.commands import EvalConfig  # noqa: F401
