"""``python -m fgrpo`` (and ``torchrun -m fgrpo``) is the ``fgrpo`` command."""

from fgrpo.cli import main

main()
