"""Reader of LastFM (hetrec2011-lastfm-2k) as LLM sequential recommenders use it: LLaRA's
split and S-DPO's fixed 20-candidate pools.

Scope: read the files into :class:`~fgrpo.data.movielens.LlaraRow` records (histories as
item ids, the user and the target's position in the user's sequence, the user's whole
history) and :class:`PoolRow` records (S-DPO's pools as ids), checking every row; no
negatives, no prompts. :mod:`fgrpo.data.next_item` builds the examples.

The input folder (``input_path``) holds the layout of ``../shared/data/lastfm`` (its
SOURCES.md gives every file's origin and hash):

* ``llara/``: LLaRA's split (976 / 122 / 122 users), ``train_data.df``, ``Val_data.df``,
  ``Test_data.df`` and ``id2name.txt`` (``id::name``). A ``.df`` is a pickled pandas
  DataFrame with columns ``seq`` (the last <= 10 item ids, right-padded with 4606),
  ``len_seq`` and ``next`` (the target). ``train_data.df`` holds every prefix of each
  training user's sequence, users one after the other, each starting with an empty history;
  valid/test hold each user's last item only.
* ``napo/``: the same split with every valid/test prefix (NAPO / S-DPO), and S-DPO's names
  (two differ from LLaRA's: 614 "Florence and the Machine", 2389 "Plus 44").
* ``sdpo/``: S-DPO's pools, ``lastfm-{val,test}.json``: ``{historyList: "a::b::c",
  itemList: [20 names], trueSelection: name}``, aligned one to one with napo's valid/test
  rows of at least 3 history items.

The pickles are read by :func:`fgrpo.data.pickled_frame.read_frame`, which runs no code
from them. Names are kept exactly as written (only the line ending is cut): 14 of them
contain ", ", which LLaRA's prompt also uses to join names, so a name is never split.
As LLaRA's loader does, rows with fewer than 3 history items are skipped (and counted):
47,872 of the 50,800 training prefixes are kept, and every valid/test row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgrpo.data.common import bump, require_file
from fgrpo.data.movielens import LLARA_MIN_HISTORY, LlaraRow
from fgrpo.data.pickled_frame import read_frame
from fgrpo.data.schema import DataError

PADDING_ID = 4606  # LLaRA's padding item for LastFM (ids 0..4605 are artists)
FRAME_FILES = {"train": "train_data.df", "valid": "Val_data.df", "test": "Test_data.df"}
SDPO_FILES = {"valid": "lastfm-val.json", "test": "lastfm-test.json"}
NAMES_FILE = "id2name.txt"


@dataclass(frozen=True)
class PoolRow:
    """A fixed pool: the history (ids, oldest first), the candidates in their given order,
    the target, and the user / target position it belongs to."""

    history: list[str]
    candidates: list[str]
    target: str
    user: str
    position: int
    where: str


@dataclass(frozen=True)
class _Prefix:
    """One ``.df`` row: its history (padding removed), target, user index and position."""

    history: list[str]
    target: str
    user: int
    position: int
    where: str


def read_names(path: Path) -> dict[str, str]:
    """``id2name.txt`` as id -> name, names exactly as written (CRLF or LF endings); a
    duplicate id or name, an empty name or a line without ``::`` raises naming the line."""
    require_file(path)
    names: dict[str, str] = {}
    ids_by_name: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            raw_id, sep, name = line.partition("::")
            where = f"{path}:{lineno}"
            if not sep:
                raise DataError(f"{where}: expected 'id::name', got {line[:60]!r}")
            if not raw_id.isdigit():
                raise DataError(f"{where}: field 'id': not an item id: {raw_id!r}")
            item = str(int(raw_id))
            if not name.strip():
                raise DataError(f"{where}: field 'name' is empty")
            if item in names:
                raise DataError(f"{where}: field 'id': duplicate item '{item}'")
            if name in ids_by_name:
                raise DataError(
                    f"{where}: field 'name': {name!r} is also item '{ids_by_name[name]}' "
                    "(names must be unique to map S-DPO's pools)"
                )
            names[item] = name
            ids_by_name[name] = item
    if not names:
        raise DataError(f"{path}: no 'id::name' lines")
    return names


def _int(value: Any, where: str, fld: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{where}: field '{fld}': expected an int, got {value!r:.60}")
    return value


def _history(value: Any, where: str, titles: dict[str, str]) -> list[str]:
    """``seq`` without its right padding, as ids that must all be in ``titles``."""
    if not isinstance(value, list):
        raise DataError(f"{where}: field 'seq': expected a list of item ids, got {value!r:.60}")
    items = [_int(v, where, f"seq[{i}]") for i, v in enumerate(value)]
    n = len(items)
    while n and items[n - 1] == PADDING_ID:
        n -= 1
    out = []
    for i, item in enumerate(items[:n]):
        if str(item) not in titles:
            raise DataError(f"{where}: field 'seq[{i}]': item {item} is not in {NAMES_FILE}")
        out.append(str(item))
    return out


def read_prefixes(path: Path, titles: dict[str, str], per_user: bool) -> list[_Prefix]:
    """The rows of a ``.df`` file. ``per_user``: the file lists every prefix of each user
    (an empty history starts a user, and each next row extends the previous one by its
    target, window of 10): rows get user indices and positions, and a row that does not
    continue its user raises. Otherwise every row is its own user, position = its length."""
    cols = read_frame(path)
    for name in ("seq", "len_seq", "next"):
        if name not in cols:
            raise DataError(f"{path}: column '{name}' is missing (columns: {sorted(cols)})")
    out: list[_Prefix] = []
    user, position = -1, 0
    for j, (seq, length, nxt) in enumerate(
        zip(cols["seq"], cols["len_seq"], cols["next"], strict=True)
    ):
        where = f"{path}:row {j}"
        history = _history(seq, where, titles)
        target = str(_int(nxt, where, "next"))
        if target not in titles:
            raise DataError(f"{where}: field 'next': item {target} is not in {NAMES_FILE}")
        if _int(length, where, "len_seq") != max(1, len(history)):
            raise DataError(
                f"{where}: field 'len_seq': {length} but 'seq' holds {len(history)} items"
            )
        if not per_user:
            out.append(_Prefix(history, target, j, len(history), where))
            continue
        if not history:
            user, position = user + 1, 0
        elif user < 0 or history != (out[-1].history + [out[-1].target])[-len(seq) :]:
            raise DataError(
                f"{where}: field 'seq': does not continue the previous row's history and "
                "target (a file of every prefix, users one after the other, each from an "
                "empty history, was expected)"
            )
        out.append(_Prefix(history, target, user, position, where))
        position += 1
    return out


def _whole_histories(rows: list[_Prefix]) -> dict[int, tuple[str, ...]]:
    """user index -> every item of the user's rows (histories and targets), sorted."""
    seen: dict[int, set[str]] = {}
    for r in rows:
        seen.setdefault(r.user, set()).update([*r.history, r.target])
    return {u: tuple(sorted(s, key=int)) for u, s in seen.items()}


def _llara_rows(
    rows: list[_Prefix],
    split: str,
    whole: dict[int, tuple[str, ...]],
    stats: dict[str, int] | None,
) -> list[LlaraRow]:
    out = []
    for r in rows:
        if len(r.history) < LLARA_MIN_HISTORY:
            bump(stats, f"skipped_{split}_rows_short_history")
            continue
        out.append(
            LlaraRow(r.history, r.target, r.where, f"{split}-u{r.user}", r.position, whole[r.user])
        )
    return out


def _last_per_user(rows: list[_Prefix]) -> list[_Prefix]:
    last: dict[int, _Prefix] = {}
    for r in rows:
        last[r.user] = r
    return [last[u] for u in sorted(last)]


def load_llara(
    root: str | Path, stats: dict[str, int] | None = None
) -> tuple[dict[str, list[LlaraRow]], dict[str, str], list[Path]]:
    """LLaRA's split: ``({split: rows}, names, files read)``.

    Each row carries the user's whole history (``seen``) for the negatives: for a training
    user every item of its prefixes; for a valid/test user every item of its prefixes in
    ``napo/`` (``llara/`` holds only each user's last 10), whose last row per user must
    equal ``llara/``'s row."""
    root = Path(root)
    folder = root / "llara"
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found (input_path must hold llara/ and napo/)")
    names_path = folder / NAMES_FILE
    titles = read_names(names_path)
    files = [names_path]
    out: dict[str, list[LlaraRow]] = {}
    for split, name in FRAME_FILES.items():
        path = folder / name
        files.append(path)
        rows = read_prefixes(path, titles, per_user=split == "train")
        if split == "train":
            out[split] = _llara_rows(rows, split, _whole_histories(rows), stats)
            continue
        napo_path = root / "napo" / name
        files.append(napo_path)
        prefixes = read_prefixes(napo_path, titles, per_user=True)
        last = _last_per_user(prefixes)
        if len(last) != len(rows):
            raise DataError(
                f"{napo_path}: {len(last)} users, but {path} has {len(rows)} rows (one per user)"
            )
        for r, n in zip(rows, last, strict=True):
            if (r.history, r.target) != (n.history, n.target):
                raise DataError(
                    f"{r.where}: does not match the last row of user {n.user} in {napo_path} "
                    f"({n.where}): the two files must list the same users in the same order"
                )
        whole = _whole_histories(prefixes)
        aligned = [
            _Prefix(r.history, r.target, n.user, n.position, r.where)
            for r, n in zip(rows, last, strict=True)
        ]
        out[split] = _llara_rows(aligned, split, whole, stats)
    return out, titles, files


def _split_names(value: Any, where: str, fld: str, ids: dict[str, str]) -> list[str]:
    if isinstance(value, str):
        value = value.split("::") if value else []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: field '{fld}': expected names, got {value!r:.60}")
    out = []
    for name in value:
        if name not in ids:
            raise DataError(f"{where}: field '{fld}': {name!r} is not a name in {NAMES_FILE}")
        out.append(ids[name])
    return out


def read_sdpo_pools(
    path: Path, split: str, ids: dict[str, str], prefixes: list[_Prefix], pool_size: int
) -> list[PoolRow]:
    """S-DPO's records at ``path`` as ids, each checked against its napo row (``prefixes``
    with at least 3 history items, in order): same history and target, else an error."""
    require_file(path)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of records")
    kept = [p for p in prefixes if len(p.history) >= LLARA_MIN_HISTORY]
    if len(kept) != len(records):
        raise DataError(
            f"{path}: {len(records)} records, but the napo file has {len(kept)} rows with "
            f">= {LLARA_MIN_HISTORY} history items: the pools must align with them one to one"
        )
    out = []
    for j, (rec, pre) in enumerate(zip(records, kept, strict=True)):
        where = f"{path}:record {j}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected a JSON object")
        for fld in ("historyList", "itemList", "trueSelection"):
            if fld not in rec:
                raise DataError(f"{where}: field '{fld}' is missing")
        history = _split_names(rec["historyList"], where, "historyList", ids)
        candidates = _split_names(rec["itemList"], where, "itemList", ids)
        (target,) = _split_names([rec["trueSelection"]], where, "trueSelection", ids)
        if len(candidates) != pool_size or len(set(candidates)) != pool_size:
            raise DataError(
                f"{where}: field 'itemList': {len(set(candidates))} distinct of {len(candidates)} "
                f"names, pool_size is {pool_size}"
            )
        if candidates.count(target) != 1:
            raise DataError(f"{where}: field 'trueSelection': not in 'itemList'")
        if (history, target) != (pre.history, pre.target):
            raise DataError(
                f"{where}: history/target differ from {pre.where}: the pools must align "
                "with the napo rows of >= 3 history items, in order"
            )
        out.append(
            PoolRow(history, candidates, target, f"{split}-u{pre.user}", pre.position, where)
        )
    return out


def load_sdpo(
    root: str | Path, pool_size: int, stats: dict[str, int] | None = None
) -> tuple[list[LlaraRow], dict[str, list[PoolRow]], dict[str, str], list[Path]]:
    """S-DPO's protocol: ``(train rows, {valid, test: pools}, names, files read)``. The
    pools and names come from ``sdpo/`` and ``napo/``; the training rows from
    ``napo/train_data.df`` (the same 50,800 rows as LLaRA's, under S-DPO's names; S-DPO's
    training pools are not in the data, so ours are drawn for them)."""
    root = Path(root)
    napo = root / "napo"
    if not napo.is_dir():
        raise DataError(f"{napo}: folder not found (input_path must hold napo/ and sdpo/)")
    names_path = napo / NAMES_FILE
    titles = read_names(names_path)
    ids = {name: item for item, name in titles.items()}
    train_path = napo / FRAME_FILES["train"]
    files = [names_path, train_path]
    prefixes = read_prefixes(train_path, titles, per_user=True)
    train = _llara_rows(prefixes, "train", _whole_histories(prefixes), stats)
    pools: dict[str, list[PoolRow]] = {}
    for split, name in SDPO_FILES.items():
        frame_path = napo / FRAME_FILES[split]
        pool_path = root / "sdpo" / name
        files += [frame_path, pool_path]
        split_prefixes = read_prefixes(frame_path, titles, per_user=True)
        pools[split] = read_sdpo_pools(pool_path, split, ids, split_prefixes, pool_size)
    return train, pools, titles, files
