"""Reading ``loop.toml``: TOML into the frozen sections of :mod:`loop.config`, every key
checked (unknown keys, wrong types and values out of range are errors that say the fix)."""

from __future__ import annotations

import dataclasses
import json
import math
import reprlib
import types
import typing
from pathlib import Path

import tomllib

from loop.config import StudyConfig
from loop.errors import ConfigError


def _shown(value) -> str:
    """A value for a message: short, whatever its size or depth."""
    shown = reprlib.Repr()
    shown.maxlevel, shown.maxlist, shown.maxstring, shown.maxother = 3, 6, 60, 60
    return shown.repr(value)


def _coerce(value, annotation, where: str):
    """Check ``value`` against a dataclass field's type; tuples come from TOML lists."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"[{where}] must be a table, got {_shown(value)}")
        return _build(annotation, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"[{where}] must be a table of tables, got {_shown(value)}")
        (_key_type, item_type) = typing.get_args(annotation)
        out = {}
        for key, item in value.items():
            try:
                out[key] = _coerce(item, item_type, f"{where}.{key}")
            except ConfigError as exc:  # say which table, once
                if f"{where}.{key}" in str(exc):
                    raise
                raise ConfigError(f"[{where}.{key}] {exc}") from None
        return out
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {_shown(value)}")
        (item_type, _ellipsis) = typing.get_args(annotation)
        return tuple(_coerce(v, item_type, f"{where}[]") for v in value)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return _coerce(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where} = {_shown(value)} has the wrong type ({annotation})")
    if annotation is type(None):
        if value is not None:
            raise ConfigError(f"{where} must be empty")
        return value
    if annotation is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} = {value}: give a finite number")
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 2**53:
            raise ConfigError(f"{where} = {value}: too large a number")
        return float(value)
    if not isinstance(value, annotation) or (annotation is int and isinstance(value, bool)):
        raise ConfigError(
            f"{where} = {_shown(value)}: expected {annotation.__name__}, got {type(value).__name__}"
        )
    return value


def _build(cls, data: dict, where: str):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        prefix = f"[{where}] " if where else ""
        raise ConfigError(
            f"{prefix}unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
        )
    kwargs = {
        name: _coerce(value, hints[name], f"{where}.{name}" if where else name)
        for name, value in data.items()
    }
    return cls(**kwargs)


def parse_config(text: str, *, source: str = "loop.toml") -> StudyConfig:
    """Parse the text of a ``loop.toml``.

    Raises
    ------
    ConfigError
        On invalid TOML, unknown keys, wrong types or values out of range.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"{source} nests arrays or tables too deeply to be a loop.toml") from None
    try:
        return _build(StudyConfig, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a ``loop.toml`` file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file at {path}; create the study with `loop init`")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8, as TOML requires"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    return parse_config(text, source=str(path))


def resolved(config: StudyConfig) -> str:
    """The configuration with every default filled in, as canonical JSON: two studies with the
    same text are alike only when this is too (a changed default changes it).

    >>> resolved(parse_config("")) == resolved(parse_config('task = "segmentation"'))
    True
    """
    return json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)
