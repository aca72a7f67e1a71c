"""The config dataclass of every ``fgrpo`` command, in one place: every field with its
one-line help and its default (paper's, or ours where documented). This module sits at the
bottom of the layers with the loader (:mod:`fgrpo.config`): library code may read these
dataclasses, and nothing here imports a library folder at module level."""

from __future__ import annotations
