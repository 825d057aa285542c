"""Study configuration: ``loop.toml`` parsed once into frozen, validated dataclasses.

Unknown keys are errors (a typo must not be silently ignored), and so are values of the
wrong type or out of range. :func:`default_toml` writes the commented file that
``loop init`` puts in a new study; :func:`load_config` reads it back.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from loop.errors import ConfigError

TASKS = ("segmentation", "classification")


@dataclass(frozen=True)
class SplitConfig:
    """Defaults of ``loop split`` (command-line options override them)."""

    test: float = 0.3
    """Held-out test set: a fraction (< 1) of the eligible images, or a count (>= 1)."""
    initial: float = 0.0
    """Initial labeled set, taken from what is left: a fraction (< 1) or a count (>= 1)."""
    seed: int = 0
    stratify: tuple[str, ...] = ()
    """Metadata columns to stratify by; empty = by class (classification) or not at all."""

    def __post_init__(self):
        for name in ("test", "initial"):
            value = getattr(self, name)
            if value < 0 or (value >= 1 and value != int(value)):
                raise ConfigError(
                    f"split.{name} = {value}: give a fraction in [0, 1) or a whole count >= 1"
                )


@dataclass(frozen=True)
class IngestConfig:
    """How ``loop ingest`` finds images, masks and sidecars."""

    extensions: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
    mask_suffixes: tuple[str, ...] = ("", "_mask", "_masks", "_cp_masks", "_label", "_labels")
    """A mask of image ``a.png`` is ``<masks>/a<suffix>.<tif|tiff|png>``, first match wins."""


@dataclass(frozen=True)
class StudyConfig:
    """Everything in ``loop.toml``."""

    task: str = "segmentation"
    groups: tuple[str, ...] = ()
    """Metadata columns that ``loop status`` and the reports break figures down by."""
    split: SplitConfig = field(default_factory=SplitConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"task = {self.task!r}: choose one of {', '.join(TASKS)}")


def _coerce(value, annotation, where: str):
    """Check ``value`` against a dataclass field's type; tuples come from TOML lists."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"[{where}] must be a table, got {value!r}")
        return _build(annotation, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        (item_type, _ellipsis) = typing.get_args(annotation)
        return tuple(_coerce(v, item_type, f"{where}[]") for v in value)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return _coerce(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where} = {value!r} has the wrong type ({annotation})")
    if annotation is type(None):
        if value is not None:
            raise ConfigError(f"{where} must be empty")
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, annotation) or (annotation is int and isinstance(value, bool)):
        raise ConfigError(
            f"{where} = {value!r}: expected {annotation.__name__}, got {type(value).__name__}"
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
    try:
        return _build(StudyConfig, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a ``loop.toml`` file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file at {path}; create the study with `loop init`")
    return parse_config(path.read_text(), source=str(path))


def default_toml(task: str) -> str:
    """The commented ``loop.toml`` that ``loop init`` writes (it parses to the defaults)."""
    if task not in TASKS:
        raise ConfigError(f"task = {task!r}: choose one of {', '.join(TASKS)}")
    split, ingest = SplitConfig(), IngestConfig()
    stratify_hint = "class" if task == "classification" else "nothing"
    return f"""\
# loop study configuration. Every key is optional; the values shown are the defaults.
# Unknown keys are errors, so a typo cannot be silently ignored.

task = "{task}"          # segmentation (instance masks) or classification (one class per image)
# Metadata columns that `loop status` and reports break figures down by (e.g. ["modality"]).
groups = []

[split]                  # defaults of `loop split`; its options override them
test = {split.test}              # held-out test set: a fraction (< 1) or a count; never annotated
initial = {split.initial}          # initial labeled set from what is left: a fraction or a count
seed = {split.seed}
stratify = []            # metadata columns to stratify by; empty = by {stratify_hint}

[ingest]
extensions = {_toml_list(ingest.extensions)}
# The mask of image a.png is <masks>/a<suffix>.tif (or .tiff, .png): first match wins.
mask_suffixes = {_toml_list(ingest.mask_suffixes)}
"""


def _toml_list(items) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"
