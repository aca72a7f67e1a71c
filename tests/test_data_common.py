"""The helpers the dataset builders share (fgrpo.data.common)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fgrpo.data import common, movielens, next_item, passages
from fgrpo.data.schema import DataError


def test_one_split_tuple_shared_by_every_builder() -> None:
    assert common.SPLITS == ("train", "valid", "test")
    assert movielens.SPLITS is common.SPLITS
    assert next_item.SPLITS is common.SPLITS
    assert passages.SPLITS is common.SPLITS


def test_bump_counts_and_ignores_no_stats() -> None:
    stats: dict[str, int] = {}
    common.bump(stats, "a")
    common.bump(stats, "a", 3)
    common.bump(None, "a")
    assert stats == {"a": 4}


def test_require_file(tmp_path: Path) -> None:
    f = tmp_path / "x.txt"
    with pytest.raises(DataError, match=r"x.txt: file not found"):
        common.require_file(f)
    f.write_text("hi")
    assert common.require_file(f) == f


def test_subsample_indices_seeded_sorted_subset() -> None:
    assert common.subsample_indices(5, None, 0, 0) == [0, 1, 2, 3, 4]
    assert common.subsample_indices(5, 9, 0, 0) == [0, 1, 2, 3, 4]
    got = common.subsample_indices(100, 7, 3, 1)
    assert len(got) == 7 and got == sorted(set(got)) and all(0 <= i < 100 for i in got)
    assert got == common.subsample_indices(100, 7, 3, 1)
    assert got != common.subsample_indices(100, 7, 3, 2)


def test_hashes(tmp_path: Path) -> None:
    data = b"abc" * 1000
    f = tmp_path / "sub" / "f.bin"
    f.parent.mkdir()
    f.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert common.sha256_file(f) == common.sha256_bytes(data) == want
    assert common.input_hashes(tmp_path, [f]) == {"sub/f.bin": want}
    assert common.input_hashes(f, [f]) == {"f.bin": want}
    assert common.stable_int("q1") == int.from_bytes(hashlib.sha256(b"q1").digest()[:8], "little")
