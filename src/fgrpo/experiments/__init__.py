"""``fgrpo compare EXPERIMENT.yaml``: several methods, equal budgets, several seeds, one table.

An experiment file names the methods to compare and the budget they share; the runner
expands it into (method, seed) runs, executes each in its own subprocess, evaluates every run
with the same ``fgrpo eval`` code on the same test examples, and writes ``results.md``,
``results.json``, ``runs.csv`` and three plots to ``output_dir`` (``docs/compare.md``).
One module per job, each importing only those above it in this list (but for
:func:`.spec.load_compare_config`, which expands the experiment to check every run's config,
importing :mod:`.expand` when it runs). The command is :mod:`fgrpo.commands.compare`; the
experiment file's dataclasses (``CompareConfig``, ``MethodSpec``) live with every other
command's config in :mod:`fgrpo.config.commands`.

* :mod:`.stats`: mean and 95% Student-t interval over seeds, paired differences.
* :mod:`.digest`: the fingerprint of what a run computes (the resume cache key).
* :mod:`.spec`: loading the experiment file and one run (``RunSpec``).
* :mod:`.expand`: the experiment into runs, one rule per method kind.
* :mod:`.plots`: the curves from each RL run's ``metrics.jsonl``.
* :mod:`.report`: results.md, results.json, runs.csv.
* :mod:`.runner`: the runs as measured subprocesses, resume, failures.
"""
