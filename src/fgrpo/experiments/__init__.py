"""Experiments built from the commands: ``fgrpo compare`` (methods x seeds, one table)."""
