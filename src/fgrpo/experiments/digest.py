"""The fingerprint of what a run computes, recorded with its results so that a resumed
comparison redoes a run whose configs changed instead of reusing stale numbers.

A run's digest hashes, for each of its command configs (training, the ranker's SFT, the
evaluation), every field not declared ``option(..., bookkeeping=True)`` (a field declared
``option(..., hashed_if_set=True)`` only when it is not at its default), plus the training
digest of the run it warm-starts from (a redone warm start makes the runs from it stale),
plus :data:`DIGEST_VERSION`.

Which fields are bookkeeping is decided on the field, per config class, because one name can
mean two things: ``batch_size`` of :class:`~fgrpo.config.commands.EvalConfig` is how many
prompts greedy decoding reads at once (bookkeeping), while ``batch_size`` of
:class:`~fgrpo.config.commands.SFTConfig` is the SFT training batch, which changes the model
(in the fingerprint).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Sequence
from typing import Any

from fgrpo.config import is_bookkeeping, is_hashed_if_set

# Version of the fingerprint's rule, hashed into every digest. A new config key needs no bump:
# its default enters every digest, so runs recorded before it existed are redone rather than
# reused by accident (a key declared hashed_if_set, whose default computes what the runs before
# it did, enters a digest only when set). Bump this number when the rule itself changes (which
# fields count, how they are serialized) or when a code change alters what the same configs
# compute: every recorded run then no longer matches and is re-run on the next `fgrpo compare`
# (resume reuses nothing from before the bump). 1 was the unversioned digest with a per-key
# migration list.
DIGEST_VERSION = 2


def fingerprint_fields(cfg: Any, include: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields of a config dataclass that change what a run computes (name -> value);
    ``include``: hashed_if_set fields kept even at their default (:func:`config_digests`)."""
    values = dataclasses.asdict(cfg)
    return {
        f.name: values[f.name] for f in dataclasses.fields(cfg)
        if not is_bookkeeping(f) and not (is_hashed_if_set(f) and values[f.name] == _default(f) and f.name not in include)
    }  # fmt: skip


def optional_at_default(cfg: Any) -> list[str]:
    """Names of the hashed_if_set fields of ``cfg`` that are at their default."""
    values = dataclasses.asdict(cfg)
    return [f.name for f in dataclasses.fields(cfg) if is_hashed_if_set(f) and values[f.name] == _default(f)]


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def config_digest(configs: Sequence[Any], warm_start_digest: str | None = None, include: frozenset[str] = frozenset()) -> str:
    """16 hex digits of the fingerprint of ``configs`` (None entries skipped) and, when the run
    starts from another run's model, that run's training digest."""
    values: list[Any] = [fingerprint_fields(c, include) for c in configs if c is not None]
    if warm_start_digest is not None:
        values.append(warm_start_digest)
    payload = {"digest_version": DIGEST_VERSION, "configs": values}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_digests(configs: Sequence[Any], warm_start_digests: set[str] | None = None) -> set[str]:
    """Every digest a finished run of ``configs`` may have recorded: :func:`config_digest`, and
    the same with any of the hashed_if_set keys at their default hashed as well. A key is
    declared hashed_if_set when its default computes what runs did before; a run recorded while
    the key was still hashed at that default is the same run and is reused, not redone
    (2^k digests for k such keys at their default: a handful)."""
    names = sorted({n for c in configs if c is not None for n in optional_at_default(c)})
    warms: set[str | None] = set(warm_start_digests) if warm_start_digests is not None else {None}
    return {
        config_digest(configs, warm, frozenset(subset))
        for r in range(len(names) + 1) for subset in itertools.combinations(names, r) for warm in warms
    }  # fmt: skip
