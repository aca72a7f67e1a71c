"""Readers of RecBole's files: atomic interaction logs and sequence files (as LLMRank ships them).

Scope: read the files into :class:`~fgrpo.data.movielens.RecData` (one interaction per row,
checked, a bad row raising with file, line and field or skipped and counted);
:func:`fgrpo.data.next_item.build_sequential` turns them into next-item examples, the same
protocol as MovieLens (chronological leave-one-out, seeded pools of negatives outside the
user's history).

Files (tab-separated, a typed header such as ``user_id:token``; RecBole's atomic format)
    * ``NAME.inter``, atomic: one interaction a row, with a user, an item and a timestamp
      column (``user_id:token item_id:token rating:float timestamp:float``; other columns
      are ignored). The timestamp orders each user's items; ties are broken by item id.
    * ``NAME.inter`` or ``NAME.train.inter`` + ``NAME.valid.inter`` + ``NAME.test.inter``,
      sequence: ``user_id:token item_id_list:token_seq item_id:token``, a history (item ids
      separated by spaces, oldest first) and its next item. There is no timestamp, so each
      user's sequence is taken from one row: the one with the longest history + target,
      the later one on a tie (files read train, valid, test; lines in order). RecBole and
      LLMRank write prefixes of one sequence per user, the test row's being the longest
      (histories cut to the last 50 items tie, and the later row holds the most recent),
      so leave-one-out on it gives back their own valid and test targets. Items that a cut
      history lost are lost for training too.
    * ``NAME.item`` (optional): ``item_id:token`` and a text column, the item's name in
      prompts (``item_text_field``; null: the first of :data:`ITEM_TEXT_FIELDS` present).
      Without it, an item's text is its id, and ``stats['items_text_is_id']`` counts them.

Which files: ``interactions_file`` / ``items_file`` name them (relative to the folder or
absolute); null finds the one ``NAME`` of the folder's ``*.inter`` files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fgrpo.data.common import bump, find_file
from fgrpo.data.movielens import Interaction, RecData, read_atomic
from fgrpo.data.schema import DataError

ITEM_TEXT_FIELDS = ("movie_title", "title", "name", "item_name")
SEQUENCE_PARTS = ("train", "valid", "test")  # NAME.<part>.inter, read in this order


@dataclass(frozen=True)
class Fields:
    """The column names a RecBole file is read with (config keys of the same names)."""

    user: str = "user_id"
    item: str = "item_id"
    time: str = "timestamp"
    item_list: str = "item_id_list"
    item_text: str | None = None


def inter_files(folder: Path, interactions_file: str | None) -> list[Path]:
    """The ``.inter`` files to read: the one named, else the folder's ``NAME.inter`` or
    ``NAME.{train,valid,test}.inter`` (one NAME only; the error lists what was found)."""
    if interactions_file:
        return [find_file(folder, interactions_file, interactions_file, "interactions_file")]
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found (dataset recbole reads a folder)")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".inter")
    names: dict[str, dict[str, Path]] = {}
    for p in found:
        stem = p.name[: -len(".inter")]
        base, _, part = stem.rpartition(".")
        if base and part in SEQUENCE_PARTS:
            names.setdefault(base, {})[part] = p
        else:
            names.setdefault(stem, {})[""] = p
    if len(names) != 1:
        listed = ", ".join(p.name for p in found) or "none"
        raise DataError(
            f"{folder}: expected the .inter file(s) of one data set (NAME.inter or "
            f"NAME.train/valid/test.inter), found {listed}; set key 'interactions_file'"
        )
    parts = next(iter(names.values()))
    if "" in parts:
        return [parts[""]]
    missing = [p for p in SEQUENCE_PARTS if p not in parts]
    if missing:
        raise DataError(
            f"{folder}: found {', '.join(p.name for p in parts.values())} but not the "
            f"{', '.join(missing)} part(s); set key 'interactions_file' to read one file"
        )
    return [parts[p] for p in SEQUENCE_PARTS]


def dataset_name(inter: Path) -> str:
    """``Games`` of ``Games.inter`` and of ``Games.test.inter``."""
    stem = inter.name[: -len(".inter")] if inter.name.endswith(".inter") else inter.stem
    base, _, part = stem.rpartition(".")
    return base if base and part in SEQUENCE_PARTS else stem


def read_item_texts(
    path: Path, fields: Fields, skip_invalid: bool, stats: dict[str, int] | None
) -> dict[str, str]:
    """item id -> text from a ``.item`` file (whitespace collapsed)."""
    with path.open(encoding="utf-8-sig") as fh:
        names = [c.split(":", 1)[0] for c in fh.readline().rstrip("\r\n").split("\t")]
    text_field = fields.item_text or next((n for n in ITEM_TEXT_FIELDS if n in names), None)
    if text_field is None:
        raise DataError(
            f"{path}:1: no item text column (looked for {', '.join(ITEM_TEXT_FIELDS)}; header "
            f"has {', '.join(names)}); set key 'item_text_field'"
        )
    titles: dict[str, str] = {}
    for lineno, row in read_atomic(path, (fields.item, text_field), skip_invalid, stats):
        item, text = row[fields.item].strip(), " ".join(row[text_field].split())
        try:
            if not item or not text:
                raise DataError(
                    f"{path}:{lineno}: field '{fields.item if not item else text_field}' is empty"
                )
            if item in titles:
                raise DataError(f"{path}:{lineno}: field '{fields.item}': duplicate item '{item}'")
        except DataError:
            if not skip_invalid:
                raise
            bump(stats, "skipped_bad_rows")
            continue
        titles[item] = text
    return titles


def _header_names(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig") as fh:
        return [c.split(":", 1)[0] for c in fh.readline().rstrip("\r\n").split("\t")]


def _known(item: str, titles: dict[str, str] | None, where: str, fld: str, item_file: str) -> str:
    """``item`` after checking it is non-empty and (with an item file) listed there."""
    if not item:
        raise DataError(f"{where}: field '{fld}' is empty")
    if titles is not None and item not in titles:
        raise DataError(f"{where}: field '{fld}': item '{item}' is not in {item_file}")
    return item


def load_recbole(
    folder: str | Path,
    fields: Fields = Fields(),  # noqa: B008 - frozen
    interactions_file: str | None = None,
    items_file: str | None = None,
    skip_invalid: bool = False,
    stats: dict[str, int] | None = None,
) -> RecData:
    """Interactions and item texts of a RecBole atomic or sequence data set (module doc)."""
    folder = Path(folder)
    inters = inter_files(folder, interactions_file)
    name = dataset_name(inters[0])
    if items_file:
        item_path: Path | None = find_file(folder, items_file, items_file, "items_file")
    else:
        item_path = folder / f"{name}.item" if (folder / f"{name}.item").is_file() else None
    titles = read_item_texts(item_path, fields, skip_invalid, stats) if item_path else None
    item_file = item_path.name if item_path else ""
    sequence = fields.item_list in _header_names(inters[0])
    interactions: list[Interaction] = []
    if sequence:
        best: dict[str, tuple[int, int, list[str]]] = {}  # user -> (length, order, sequence)
        order = 0
        for path in inters:
            required = (fields.user, fields.item_list, fields.item)
            for lineno, row in read_atomic(path, required, skip_invalid, stats):
                where = f"{path}:{lineno}"
                try:
                    user = _known(row[fields.user].strip(), None, where, fields.user, "")
                    history = row[fields.item_list].split()
                    for i, h in enumerate(history):
                        _known(h, titles, where, f"{fields.item_list}[{i}]", item_file)
                    seq = [
                        *history,
                        _known(row[fields.item].strip(), titles, where, fields.item, item_file),
                    ]
                except DataError:
                    if not skip_invalid:
                        raise
                    bump(stats, "skipped_bad_rows")
                    continue
                order += 1
                if user not in best or (len(seq), order) >= best[user][:2]:
                    best[user] = (len(seq), order, seq)
        for user, (_n, _o, seq) in best.items():
            interactions.extend(Interaction(user, item, float(t)) for t, item in enumerate(seq))
    else:
        if len(inters) > 1:
            raise DataError(
                f"{inters[0]}:1: field '{fields.item_list}' is missing (sequence files need it)"
            )
        path = inters[0]
        for lineno, row in read_atomic(
            path, (fields.user, fields.item, fields.time), skip_invalid, stats
        ):
            where = f"{path}:{lineno}"
            try:
                user = _known(row[fields.user].strip(), None, where, fields.user, "")
                item = _known(row[fields.item].strip(), titles, where, fields.item, item_file)
                raw = row[fields.time].strip()
                try:
                    ts = float(raw)
                except ValueError:
                    raise DataError(
                        f"{where}: field '{fields.time}': not a number: {raw!r}"
                    ) from None
            except DataError:
                if not skip_invalid:
                    raise
                bump(stats, "skipped_bad_rows")
                continue
            interactions.append(Interaction(user, item, ts))
    if titles is None:
        titles = {it.item: it.item for it in interactions}
        bump(stats, "items_text_is_id", len(titles))
    files = [*inters, *([item_path] if item_path else [])]
    return RecData(interactions, titles, inters[-1], item_path or inters[0], files)
