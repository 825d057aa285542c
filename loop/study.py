"""A study: one folder holding ``loop.toml`` (the configuration) and ``loop.db`` (the store).

Files the loop writes for a study (models, exported masks, Label Studio's data) live in
sub-folders of it, so a study can be moved or archived as one folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loop.config import StudyConfig
from loop.config_parse import load_config, parse_config
from loop.config_template import default_toml
from loop.errors import StudyExists, StudyNotFound
from loop.store import Store

CONFIG_NAME = "loop.toml"
DB_NAME = "loop.db"


@dataclass
class Study:
    """An open study. Use as a context manager, or call :meth:`close`."""

    path: Path
    config: StudyConfig
    store: Store
    # models loaded while the study is open, by (model id, sha256, gpu): one load per round
    models: dict = field(default_factory=dict, repr=False, compare=False)

    def close(self) -> None:
        self.models.clear()
        self.store.close()

    def __enter__(self) -> Study:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def resolve(self, path: str) -> Path:
        """A path stored in the database: relative ones are relative to the study folder."""
        p = Path(path)
        return p if p.is_absolute() else self.path / p


def init_study(
    path: str | Path, *, task: str = "segmentation", config: str | Path | None = None
) -> Study:
    """Create a study folder with a commented ``loop.toml`` (or a copy of ``config``, checked
    first) and an empty ``loop.db``.

    Raises
    ------
    StudyExists
        When ``path`` already holds a study.
    ConfigError
        When ``config`` is not a valid configuration.
    """
    path = Path(path)
    if (path / CONFIG_NAME).exists() or (path / DB_NAME).exists():
        raise StudyExists(f"{path} already holds a study; open it, or choose another folder")
    if config is not None:
        text = Path(config).read_text()
        parse_config(text, source=str(config))
    else:
        text = default_toml(task)  # validates task before anything is written
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_NAME).write_text(text)
    return Study(
        path=path, config=load_config(path / CONFIG_NAME), store=Store(path / DB_NAME, create=True)
    )


def open_study(path: str | Path) -> Study:
    """Open an existing study.

    Raises
    ------
    StudyNotFound
        When ``path`` has no ``loop.toml`` or ``loop.db``.
    """
    path = Path(path)
    if not (path / CONFIG_NAME).is_file() or not (path / DB_NAME).is_file():
        raise StudyNotFound(
            f"{path} is not a study (no {CONFIG_NAME} / {DB_NAME}); create it with "
            f"`loop init {path} --task segmentation`"
        )
    return Study(path=path, config=load_config(path / CONFIG_NAME), store=Store(path / DB_NAME))
