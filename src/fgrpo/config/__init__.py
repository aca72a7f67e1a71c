"""Config dataclasses: YAML files plus ``key=value`` overrides, validated strictly.

Every command has one dataclass (the single source of truth for its options). Each field
is declared with :func:`option`, which carries its one-line help. Loading rejects unknown
keys and values of the wrong type with a message that names the key and where it came
from, so a typo in a YAML file never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

T = TypeVar("T")
# a number YAML 1.1 reads as a string: 1e-5 and 1e-06 (no dot), 1E5, +2e3
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters, so that a 10 MB bad value does not
    become a 10 MB error message (the cut says how long the whole was)."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"… ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean a, b?)`` with the choices closest to ``word`` (difflib's similarity
    ratio >= 0.6, its default: a typo of a letter or two, or a missing word part), else ``""``."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


class ConfigError(ValueError):
    """A config file or override that cannot be accepted."""


def option(default: Any, help: str, *, bookkeeping: bool = False, hashed_if_set: bool = False) -> Any:  # noqa: A002 - "help" reads best at call sites
    """A config field with its default and a one-line help text. ``bookkeeping=True`` marks a
    key that does not change what a run computes (threads, logging, checkpoint cadence): `fgrpo
    compare` leaves it out of a run's fingerprint, so changing it reuses finished results.
    ``hashed_if_set=True`` marks a key added later whose default computes exactly what runs did
    before it existed: the fingerprint holds it only when it differs from that default, so runs
    recorded before it was added stay valid. "Exactly" means the same math: a default that
    only changes fp32 rounding (``onednn_linear``'s kernels, ``static_decode``'s fused
    matmuls), as a torch upgrade would, counts as the same computation."""
    metadata: dict[str, Any] = {"help": help}
    if bookkeeping:
        metadata["bookkeeping"] = True
    if hashed_if_set:
        metadata["hashed_if_set"] = True
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def is_bookkeeping(f: dataclasses.Field) -> bool:
    """Whether a config field was declared with ``option(..., bookkeeping=True)``."""
    return bool(f.metadata.get("bookkeeping", False))


def is_hashed_if_set(f: dataclasses.Field) -> bool:
    """Whether a config field was declared with ``option(..., hashed_if_set=True)``."""
    return bool(f.metadata.get("hashed_if_set", False))


def field_help(cls: type) -> dict[str, tuple[str, Any, str]]:
    """name -> (type name, default, help) for every field of a config dataclass."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out[f.name] = (_type_name(hints[f.name]), default, f.metadata.get("help", ""))
    return out


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (int widens to float); raise naming the key."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in get_args(tp):
            try:
                return _coerce(value, arm, key, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: key '{key}': {short(value)} is not {_type_name(tp)}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        hint = did_you_mean(value, [a for a in get_args(tp) if isinstance(a, str)]) if isinstance(value, str) else ""
        raise ConfigError(f"{where}: key '{key}': {short(value)} is not one of {_type_name(tp)}{hint}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: key '{key}': expected null, got {short(value)}")
    if tp is Any:
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: key '{key}': expected a list, got {short(value)}")
        (item_tp, *_rest) = get_args(tp) or (Any,)
        return [_coerce(v, item_tp, key, where) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key '{key}': expected a mapping, got {short(value)}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: key '{key}': expected true/false, got {short(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: key '{key}': expected an integer, got {short(value)}")
    if tp is float:
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            value = float(value)  # 1e-5: YAML 1.1 wants a dot to read it as a number
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isnan(value):
                raise ConfigError(f"{where}: key '{key}': expected a number, got NaN")
            return float(value)
        raise ConfigError(f"{where}: key '{key}': expected a number, got {short(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: key '{key}': expected a string, got {short(value)}")
    raise ConfigError(f"{where}: key '{key}': unsupported annotation {tp!r}")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["lr=1e-5", "use_lora=true"]`` -> ``{"lr": 1e-5, "use_lora": True}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {short(item)}: expected key=value")
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-").replace("-", "_")
        try:
            out[key] = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"override {short(item)}: value is not valid YAML ({short(str(e), 200)})") from e
    return out


def check_values(cls: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    """Keys known and values of the annotated types; returns the coerced mapping."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key {short(key)} for {cls.__name__}{did_you_mean(key, names)}")
        kwargs[key] = _coerce(value, hints[key], key, where)
    return kwargs


def build_config(cls: type[T], values: dict[str, Any], where: str) -> T:
    """Instantiate ``cls`` from a mapping, rejecting unknown keys, wrong types and contradictions."""
    kwargs = check_values(cls, values, where)
    try:
        cfg = cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from e
    return cfg


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key written twice in one mapping (safe_load keeps the last,
    silently)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first != key_node.start_mark.line + 1:
                raise ConfigError(
                    f"line {key_node.start_mark.line + 1}: key {short(key)} is given twice "
                    f"(first at line {first}); keep one"
                )
        return super().construct_mapping(node, deep=deep)


def check_output_dir(path: str | Path, key: str = "output_dir") -> None:
    """ValueError naming ``key`` when ``path`` cannot be a folder: it, or a folder above it,
    is a file."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                what = "is a file" if q == p else f"is under {q}, which is a file"
                raise ValueError(f"key '{key}': {short(str(path))} {what}, not a folder")
            return


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A config file's top-level mapping (empty file: {}), or a ConfigError naming the file."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except ConfigError as e:  # a key given twice
        raise ConfigError(f"{path}: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({short(str(e), 300)})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value at the top level")
    return loaded


def load_config(cls: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    """Read ``path`` (YAML mapping, may be None) then apply ``key=value`` overrides."""
    values: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        path = Path(path)
        loaded = read_yaml_mapping(path)
        check_values(cls, loaded, str(path))  # names the file if one of its own keys is wrong
        values.update(loaded)
        where = str(path)
    if overrides:
        parsed = parse_overrides(overrides)
        check_values(cls, parsed, "command line")
        values.update(parsed)
        where = f"{where} + command line"
    return build_config(cls, values, where)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
