"""Helpers every dataset builder shares: the split names, the stats counter, file checks,
seeded subsampling and hashing (of input files for the manifest, of ids for seeds)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from fgrpo.data.schema import DataError

SPLITS = ("train", "valid", "test")


def bump(stats: dict[str, int] | None, key: str, n: int = 1) -> None:
    """Add ``n`` to ``stats[key]`` (no-op without a stats dict)."""
    if stats is not None:
        stats[key] = stats.get(key, 0) + n


def require_file(path: Path) -> Path:
    """``path`` itself, or a :class:`DataError` naming it when it is not a file."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def find_file(folder: Path, given: str | None, default: str, key: str) -> Path:
    """The file config key ``key`` names (``given``: relative to ``folder`` or absolute;
    None: ``default`` in ``folder``), or a :class:`DataError` saying what was looked for."""
    path = Path(given) if given and Path(given).is_absolute() else folder / (given or default)
    if path.is_file():
        return path
    present = sorted(p.name for p in folder.iterdir() if p.is_file())[:20] if folder.is_dir() else []
    found = f"; {folder} holds {', '.join(present)}" if present else f"; {folder} holds no file"
    how = f"key '{key}'" if given else f"the default of key '{key}'; set it to your file's name"
    raise DataError(f"{path}: file not found (looked for {path.name}, {how}{found})")


def subsample_indices(n: int, max_examples: int | None, seed: int, salt: int) -> list[int]:
    """All of ``range(n)``, or a seeded subset of ``max_examples`` of them in order."""
    if max_examples is None or n <= max_examples:
        return list(range(n))
    rng = np.random.default_rng([seed, 0x5EED, salt])
    return sorted(rng.choice(n, size=max_examples, replace=False).tolist())


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stable_int(text: str) -> int:
    """A 64-bit integer from ``text`` (the first 8 bytes of its sha256), the same on every
    machine and run: a seed derived from an id."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def input_hashes(root: Path, files: list[Path]) -> dict[str, str]:
    """name relative to the input folder (or bare file name) -> sha256, sorted by name."""
    out = {}
    for f in files:
        try:
            name = f.relative_to(root).as_posix() if root.is_dir() else f.name
        except ValueError:
            name = f.name
        out[name] = sha256_file(f)
    return dict(sorted(out.items()))
