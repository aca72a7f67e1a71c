"""Data sets from the Hugging Face ``datasets`` library: a ``Dataset`` or ``DatasetDict`` in
Python, or one saved with ``save_to_disk`` (read with ``datasets.load_from_disk``; no hub).

Two shapes, told apart by the columns (names are config keys):
    * ranking examples: a ``query_field`` column (and ``candidates_field``,
      ``relevance_field``, optional ``id_field``, ``task``, ``meta``). Each row is checked
      as a JSONL row is (:func:`fgrpo.data.schema.example_from_json`). Candidates are a list
      of ``{id, text}`` or of strings (ids ``"1".."N"``); relevance a list of relevant ids
      or an id -> grade struct (``None`` entries, which Arrow adds for ids another row has,
      are dropped). A ``DatasetDict``'s ``train`` / ``valid`` (or ``validation``, ``val``) /
      ``test`` are the splits; a single ``Dataset`` is split by a seeded permutation
      (``valid_fraction``, ``test_fraction``).
    * interactions: ``user_field``, ``item_field``, ``time_field`` columns (optional
      ``item_text_field``: the item's name, the first non-empty one per item; else its id).
      Every split's rows are pooled and rebuilt with the next-item protocol of
      :mod:`fgrpo.data.next_item`, as RecBole and MovieLens logs are.

A bad row raises :class:`DataError` naming ``PATH[split]:row N`` and the field, or is
skipped and counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fgrpo.data.common import SPLITS, bump
from fgrpo.data.movielens import Interaction, RecData
from fgrpo.data.recbole import Fields
from fgrpo.data.schema import DataError, Example, example_from_json

SPLIT_NAMES = {
    "train": ("train",),
    "valid": ("valid", "validation", "val", "dev"),
    "test": ("test",),
}


def load_saved(path: str | Path) -> Any:
    """``datasets.load_from_disk(path)``, with a DataError naming the folder when it fails."""
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise DataError(
            "dataset hf_dataset needs the 'datasets' package (pip install datasets)"
        ) from e
    path = Path(path)
    if not path.is_dir():
        raise DataError(
            f"{path}: folder not found (dataset hf_dataset reads a save_to_disk folder)"
        )
    try:
        return datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise DataError(f"{path}: not a datasets.save_to_disk folder ({e})") from None


def as_splits(data: Any) -> dict[str, Any]:
    """``{name: Dataset}``: a DatasetDict's own splits, or ``{"": dataset}`` for one Dataset."""
    if isinstance(data, Mapping) or hasattr(data, "keys") and not hasattr(data, "column_names"):
        return {str(k): data[k] for k in data}
    return {"": data}


def columns(data: Any) -> list[str]:
    """The column names of a Dataset, or of a DatasetDict's first split."""
    splits = as_splits(data)
    first = next(iter(splits.values()), None)
    return list(first.column_names) if first is not None else []


def _relevance(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items() if v is not None}
    return value


def _candidates(value: Any) -> Any:
    if isinstance(value, list) and value and all(isinstance(c, str) for c in value):
        return [{"id": str(k), "text": c} for k, c in enumerate(value, start=1)]
    return value


def _split_of(name: str) -> str | None:
    return next((s for s, names in SPLIT_NAMES.items() if name.lower() in names), None)


def examples_from_hf(
    data: Any,
    *,
    where: str,
    id_field: str = "id",
    query_field: str = "query",
    candidates_field: str = "candidates",
    relevance_field: str = "relevance",
    task: str | None = None,
    seed: int = 0,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    skip_invalid: bool = False,
    stats: dict[str, int] | None = None,
) -> dict[str, list[Example]]:
    """Ranking examples ``{"train", "valid", "test"}`` of the first shape (module doc)."""
    out: dict[str, list[Example]] = {s: [] for s in SPLITS}
    parts = as_splits(data)
    for name, ds in parts.items():
        for col in (query_field, candidates_field, relevance_field):
            if col not in ds.column_names:
                raise DataError(
                    f"{where}[{name}]: field '{col}' is missing (columns: {', '.join(ds.column_names)})"
                )
        split = _split_of(name) if name else None
        if name and split is None:
            raise DataError(
                f"{where}: split '{name}' is not train, valid (validation, val, dev) or test"
            )
        rows: list[Example] = []
        for i, row in enumerate(ds):
            obj = {
                "id": str(row[id_field]) if id_field in row else f"{name or 'row'}-{i}",
                "query": row[query_field],
                "candidates": _candidates(row[candidates_field]),
                "relevance": _relevance(row[relevance_field]),
                "meta": row.get("meta") or {},
            }
            if task or row.get("task"):
                obj["task"] = task or row["task"]
            try:
                rows.append(
                    example_from_json(
                        obj, f"{where}[{name}]:row {i}" if name else f"{where}:row {i}"
                    )
                )
            except DataError:
                if not skip_invalid:
                    raise
                bump(stats, "skipped_bad_rows")
        if split is not None:
            out[split].extend(rows)
        else:
            n = len(rows)
            n_test, n_valid = round(n * test_fraction), round(n * valid_fraction)
            perm = np.random.default_rng([seed, 0x4F]).permutation(n).tolist()
            chosen = {
                "test": perm[:n_test],
                "valid": perm[n_test : n_test + n_valid],
                "train": perm[n_test + n_valid :],
            }
            for s, idx in chosen.items():
                out[s].extend(rows[j] for j in sorted(idx))
    return out


def recdata_from_hf(
    data: Any,
    *,
    where: str,
    fields: Fields = Fields(),  # noqa: B008 - frozen
    skip_invalid: bool = False,
    stats: dict[str, int] | None = None,
) -> RecData:
    """Interactions of the second shape (module doc), every split pooled."""
    interactions: list[Interaction] = []
    titles: dict[str, str] = {}
    for name, ds in as_splits(data).items():
        label = f"{where}[{name}]" if name else where
        for col in (fields.user, fields.item, fields.time):
            if col not in ds.column_names:
                raise DataError(
                    f"{label}: field '{col}' is missing (columns: {', '.join(ds.column_names)})"
                )
        text_col = fields.item_text if fields.item_text in ds.column_names else None
        for i, row in enumerate(ds):
            at = f"{label}:row {i}"
            try:
                user, item = (
                    str(row[fields.user] or "").strip(),
                    str(row[fields.item] or "").strip(),
                )
                if not user or not item:
                    raise DataError(
                        f"{at}: field '{fields.user if not user else fields.item}' is empty"
                    )
                ts = row[fields.time]
                if (
                    isinstance(ts, bool)
                    or not isinstance(ts, (int, float))
                    and not hasattr(ts, "timestamp")
                ):
                    raise DataError(
                        f"{at}: field '{fields.time}': not a number or datetime: {ts!r}"
                    )
                ts = float(ts.timestamp()) if hasattr(ts, "timestamp") else float(ts)
            except DataError:
                if not skip_invalid:
                    raise
                bump(stats, "skipped_bad_rows")
                continue
            text = " ".join(str(row[text_col] or "").split()) if text_col else ""
            if text and item not in titles:
                titles[item] = text
            interactions.append(Interaction(user, item, ts))
    for it in interactions:
        if it.item not in titles:
            titles[it.item] = it.item
            bump(stats, "items_text_is_id")
    path = Path(where)
    return RecData(interactions, titles, path, path, [])


def saved_files(path: Path) -> list[Path]:
    """Every file of a save_to_disk folder (hashed into the manifest)."""
    return sorted(p for p in path.rglob("*") if p.is_file())
