"""The commands layer: one module per ``fgrpo`` command, each shaped like a torchtune recipe
(parse the config -> set up once with :func:`fgrpo.commands.setup.setup_run` -> build -> run
-> write). Library folders (data, format, algorithm, rollout, trainer, evaluation, baselines,
models) never import from here; docs/architecture.md draws the layers."""
