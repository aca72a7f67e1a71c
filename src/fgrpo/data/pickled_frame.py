"""Read a pickled pandas DataFrame of ints and lists without running the pickle's code,
and without pandas.

Why by hand: ``pandas.read_pickle`` (like ``pickle.load``) calls whatever the file names,
so a downloaded ``.df`` can run code on load. No maintained library reads a DataFrame
pickle safely (``numpy.load(allow_pickle=False)`` refuses object arrays, ``fickling``
only scans). The restricted :class:`FrameUnpickler` admits exactly the globals that a
DataFrame of list and int columns refers to, found by listing the globals of LLaRA's and
NAPO's files (pandas 1.x protocol 4 and pandas 2.x protocol 5 pickles):

* numpy's array reconstruction: ``numpy.ndarray``, ``numpy.dtype``, ``_reconstruct``
  (checked to build a plain ``ndarray`` only) and ``_frombuffer`` (which numpy refuses for
  object dtypes), under ``numpy.core`` and ``numpy._core``, plus ``builtins.slice``;
* pandas' ``DataFrame``, ``BlockManager``, ``Index``, ``RangeIndex``, ``_new_Index`` and
  ``_unpickle_block``. These are never imported: they are replaced by inert stand-ins that
  only record their arguments, and :func:`read_frame` reads the columns from what they
  recorded.

Any other global is refused with a :class:`~fgrpo.data.schema.DataError` naming the file
and the ``module.name``, before anything is called. Object arrays hold only what the
unpickler itself built (lists, ints, strings), so their elements cannot smuggle code in.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from numpy._core import multiarray, numeric

from fgrpo.data.common import require_file
from fgrpo.data.schema import DataError


class _Recorded:
    """A stand-in for a pandas class: keeps constructor arguments and pickled state
    (built by a call, ``REDUCE``, or by ``cls.__new__(cls, *args)``, ``NEWOBJ``)."""

    def __new__(cls, *args: Any) -> _Recorded:
        self = super().__new__(cls)
        self.args = args
        self.state = None
        return self

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _DataFrame(_Recorded):
    pass


class _BlockManager(_Recorded):
    pass


class _IndexClass(_Recorded):
    pass


class _RangeIndexClass(_Recorded):
    pass


class _Block(_Recorded):
    """What ``pandas._libs.internals._unpickle_block(values, placement, ndim)`` built."""


class _Index(_Recorded):
    """What ``pandas.core.indexes.base._new_Index(cls, state)`` built."""


def _unpickle_block(*args: Any) -> _Block:
    return _Block(*args)


def _new_index(*args: Any) -> _Index:
    return _Index(*args)


def _reconstruct(subtype: Any, *args: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"array reconstruction of {subtype!r}, not numpy.ndarray")
    return multiarray._reconstruct(subtype, *args)


ALLOWED: dict[tuple[str, str], Any] = {
    ("builtins", "slice"): slice,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{
        (f"{pkg}.multiarray", "_reconstruct"): _reconstruct for pkg in ("numpy.core", "numpy._core")
    },
    **{
        (f"{pkg}.numeric", "_frombuffer"): numeric._frombuffer
        for pkg in ("numpy.core", "numpy._core")
    },
    ("pandas.core.frame", "DataFrame"): _DataFrame,
    ("pandas.core.internals.managers", "BlockManager"): _BlockManager,
    ("pandas._libs.internals", "_unpickle_block"): _unpickle_block,
    ("pandas.core.indexes.base", "_new_Index"): _new_index,
    ("pandas.core.indexes.base", "Index"): _IndexClass,
    ("pandas.core.indexes.range", "RangeIndex"): _RangeIndexClass,
}


class FrameUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` whose ``find_class`` admits only :data:`ALLOWED`."""

    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"{self.path}: refused to unpickle global '{module}.{name}': only the classes "
                "of a pandas DataFrame of lists and ints are allowed (a pickle can run code "
                "on load; see fgrpo.data.pickled_frame)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self.path}: refused a persistent id in the pickle ({pid!r:.60})")


def _index_values(index: Any, path: Path) -> list[Any]:
    if not isinstance(index, _Index) or len(index.args) != 2 or not isinstance(index.args[1], dict):
        raise DataError(f"{path}: not a DataFrame pickle: an axis is {type(index).__name__}")
    cls, state = index.args
    if cls is _RangeIndexClass:
        return list(range(state["start"], state["stop"], state.get("step", 1)))
    if cls is _IndexClass and isinstance(state.get("data"), np.ndarray):
        return state["data"].tolist()
    raise DataError(f"{path}: not a DataFrame pickle: unexpected axis {cls!r}")


def _blocks(manager: _BlockManager, path: Path) -> tuple[list[Any], list[tuple[Any, Any]]]:
    """``(axes, [(values, placement)])`` of a pickled BlockManager, either layout:
    pandas >= 2 passes ``(blocks, axes)`` to the constructor; pandas 1.x sets a state
    tuple whose 4th item is ``{"0.14.1": {"axes", "blocks": [{values, mgr_locs}]}}``."""
    if manager.args and len(manager.args) >= 2:
        blocks, axes = manager.args[0], manager.args[1]
        out = []
        for b in blocks:
            if not isinstance(b, _Block) or len(b.args) < 2:
                raise DataError(f"{path}: not a DataFrame pickle: a block is {type(b).__name__}")
            out.append((b.args[0], b.args[1]))
        return list(axes), out
    state = manager.state
    if isinstance(state, tuple) and len(state) >= 4 and isinstance(state[3], dict):
        new = state[3].get("0.14.1")
        if isinstance(new, dict) and "axes" in new and "blocks" in new:
            return list(new["axes"]), [(b["values"], b["mgr_locs"]) for b in new["blocks"]]
    raise DataError(f"{path}: not a DataFrame pickle: unknown BlockManager layout")


def _locations(placement: Any, n: int, path: Path) -> list[int]:
    if isinstance(placement, slice):
        return list(range(*placement.indices(n)))
    if isinstance(placement, np.ndarray) and placement.dtype.kind in "iu":
        return placement.astype(int).tolist()
    raise DataError(f"{path}: not a DataFrame pickle: block placement {type(placement).__name__}")


def frame_columns(obj: Any, path: Path) -> dict[str, list[Any]]:
    """Column name -> Python values of what :class:`FrameUnpickler` loaded from ``path``."""
    if not isinstance(obj, _DataFrame) or not isinstance(obj.state, dict):
        raise DataError(f"{path}: not a pickled pandas DataFrame (got {type(obj).__name__})")
    manager = obj.state.get("_mgr") or obj.state.get("_data")
    if not isinstance(manager, _BlockManager):
        raise DataError(f"{path}: not a DataFrame pickle: no block manager")
    axes, blocks = _blocks(manager, path)
    if len(axes) != 2:
        raise DataError(f"{path}: expected a 2-axis DataFrame, got {len(axes)} axes")
    names = [str(c) for c in _index_values(axes[0], path)]
    n_rows = len(_index_values(axes[1], path))
    columns: dict[str, list[Any]] = {}
    for values, placement in blocks:
        if not isinstance(values, np.ndarray) or values.ndim != 2 or values.shape[1] != n_rows:
            raise DataError(
                f"{path}: not a DataFrame pickle: a block is not a 2-D array of {n_rows} rows"
            )
        for row, col in enumerate(_locations(placement, len(names), path)):
            columns[names[col]] = values[row].tolist()
    missing = [c for c in names if c not in columns]
    if missing:
        raise DataError(f"{path}: DataFrame pickle has no values for columns {missing}")
    return {c: columns[c] for c in names}


def read_frame(path: str | Path) -> dict[str, list[Any]]:
    """The columns of a pickled DataFrame at ``path`` as ``{name: [values]}`` (ints as
    ``int``, list cells as ``list``), read with :class:`FrameUnpickler` (see module doc)."""
    path = require_file(Path(path))
    with path.open("rb") as fh:
        try:
            obj = FrameUnpickler(fh, path).load()
        except DataError:
            raise
        except Exception as e:  # a truncated or foreign file: say which
            raise DataError(
                f"{path}: not a readable DataFrame pickle ({type(e).__name__}: {e})"
            ) from e
    return frame_columns(obj, path)
