"""
Tables other tools read (columns: docs/reference/database.md):

``images``       one row per image file: path relative to its data root, sha256, shape,
                 split (``pool``/``labeled``/``test``/``excluded``), metadata as ``meta_*``
                 columns and as JSON.
``labels``       the labels the loop knows: ground truth (``source='truth'``, never used for
                 training unless the image is ``labeled``), consensus, adjudicated.
``annotations``  the current version per (task, annotator), raw payload kept;
                 older versions in ``annotation_versions``.
``tasks``        one row per image per push to the annotation tool.
``rounds``       one row per (arm, round): labels used, model, held-out metrics, timings.
``arm_images``   the labeled images of each arm of the loop, with the round that added them.
``models``       one row per trained model: file, sha256, parameters, software versions.
``changes``      what re-ingest changed (old and new values); ``skipped`` files ingest could
                 not use and why; ``splits`` every split made.

Every multi-row write goes through :meth:`Store.atomic`, so a killed process leaves the
database as it was before the write. The schema is versioned with ``PRAGMA user_version``
and migrated forward on open.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import sqlite_utils

from loop.errors import MetadataError, StudyNotFound, StudyUnwritable
from loop.store.schema import migrate

SPLITS = ("pool", "labeled", "test", "excluded")


LABEL_SOURCES = ("truth", "consensus", "adjudicated", "annotator")


META_PREFIX = "meta_"


def utcnow() -> str:
    """An ISO-8601 UTC timestamp with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def dumps(value) -> str:
    """Canonical JSON (sorted keys) so equal values compare equal as text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


META_SLUG = 60
"""Characters of a metadata key kept in its column's name."""
MAX_META_COLUMNS = 200
"""Metadata keys a study keeps as ``images`` columns (each usable by ``--where``, ``groups``
and ``stratify``); keys past it stay in ``images.metadata`` only. SQLite allows 2,000 columns
and about 32,000 values per statement, so no table of metadata can brick a study."""


def meta_column(key: str) -> str:
    """The ``images`` column that holds metadata ``key`` (letters of any script are kept).

    >>> meta_column("Instrument ID")
    'meta_instrument_id'
    >>> meta_column("Température (°C)")
    'meta_température_c'
    """
    slug = re.sub(r"\W+", "_", key.strip()).strip("_").casefold()[:META_SLUG]
    return META_PREFIX + (slug or "unnamed")


def database_problem(path, exc: sqlite3.Error) -> str:
    """One line for an SQLite error of the study database: what happened and what to do.

    >>> database_problem("s/loop.db", sqlite3.OperationalError("database or disk is full"))
    's/loop.db: database or disk is full (free some space, then run it again)'
    """
    text = str(exc)
    lowered = text.lower()
    if "full" in lowered:
        hint = "free some space, then run it again"
    elif "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        hint = (
            "the study folder must be writable, even to read it (SQLite keeps its journal "
            "beside the database): run on a writable copy, e.g. `cp -r STUDY /tmp/`"
        )
    elif "locked" in lowered or "busy" in lowered:
        hint = "another loop command holds the study: wait for it to finish"
    elif "disk i/o" in lowered:
        hint = "a full or failing disk: check `df -h`, free some space, then run it again"
    else:
        hint = "check the disk, or restore the study from a copy"
    return f"{path}: {text} ({hint})"


class Store:
    """The study database.

    Parameters
    ----------
    path : path
        The SQLite file (created when ``create=True``).
    create : bool
        Create the file if missing; otherwise a missing file is :class:`StudyNotFound`.
    """

    def __init__(self, path: str | Path, *, create: bool = False):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StudyNotFound(
                f"no study database at {self.path}; create the study with `loop init`"
            )
        try:
            self.db = sqlite_utils.Database(self.path)
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA busy_timeout = 10000")
            migrate(self.db)
        except sqlite3.OperationalError as exc:
            raise StudyUnwritable(database_problem(self.path, exc)) from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def atomic(self) -> Iterator[sqlite_utils.Database]:
        """A transaction (a savepoint when nested): all of it is written, or none."""
        with self.db.atomic():
            yield self.db

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    # --- images ------------------------------------------------------------------------

    def image_by_path(self, root: str, path: str) -> dict | None:
        rows = list(self.db["images"].rows_where("root = ? and path = ?", [root, path]))
        return rows[0] if rows else None

    def image_by_sha(self, sha256: str) -> dict | None:
        rows = list(self.db["images"].rows_where("sha256 = ?", [sha256]))
        return rows[0] if rows else None

    def image(self, image_id: int) -> dict:
        return self.db["images"].get(image_id)

    def images(self, where: str | None = None, params=(), order_by: str = "id") -> list[dict]:
        return list(self.db["images"].rows_where(where, list(params), order_by=order_by))

    def meta_columns(self) -> list[str]:
        """Metadata keys that have a column, without the ``meta_`` prefix."""
        return [
            c.name[len(META_PREFIX) :]
            for c in self.db["images"].columns
            if c.name.startswith(META_PREFIX)
        ]

    def ensure_meta_columns(self, keys) -> list[str]:
        """Make a column for each metadata key that has none; returns the keys left without
        one (the study holds :data:`MAX_META_COLUMNS` already).

        Raises
        ------
        MetadataError
            When a key would share its column with another key of the study.
        """
        columns = {c.name for c in self.db["images"].columns}
        owners = {r["column"]: r["key"] for r in self.db["meta_keys"].rows}
        made = sum(c.startswith(META_PREFIX) for c in columns)
        left = []
        for key in sorted(keys):
            column = meta_column(key)
            owner = owners.get(column)
            if owner is not None and owner != key:
                raise MetadataError(
                    f"metadata key {key!r} would share column {column} with key {owner!r} of "
                    "this study; rename one of them in the table or sidecar"
                )
            if column not in columns:
                if made >= MAX_META_COLUMNS:
                    left.append(key)
                    continue
                # no declared type: metadata keeps its JSON type (numbers compare as numbers)
                self.db.execute(f'ALTER TABLE images ADD COLUMN "{column}"')
                columns.add(column)
                made += 1
            if owner is None:
                self.db["meta_keys"].insert({"column": column, "key": key}, replace=True)
                owners[column] = key
        return left

    def truth(self, image_id: int) -> dict | None:
        """The ground-truth label of an image, if any."""
        rows = list(self.db["labels"].rows_where("image_id = ? and source = 'truth'", [image_id]))
        return rows[0] if rows else None

    def record_change(self, image_id: int, field: str, old, new) -> None:
        self.db["changes"].insert(
            {
                "image_id": image_id,
                "field": field,
                "old": dumps(old),
                "new": dumps(new),
                "at": utcnow(),
            }
        )

    # --- skipped files -----------------------------------------------------------------

    def record_skipped(self, path: str, reason: str, message: str) -> None:
        self.db["skipped"].upsert(
            {"path": path, "reason": reason, "message": message, "at": utcnow()},
            pk="path",
            alter=False,
        )

    def clear_skipped(self, path: str) -> None:
        self.db.execute("DELETE FROM skipped WHERE path = ?", [path])

    # --- summaries ---------------------------------------------------------------------

    def count_by(self, column: str, where: str | None = None, params=()) -> dict:
        """Image counts by the values of an ``images`` column."""
        if column not in {c.name for c in self.db["images"].columns}:
            raise KeyError(column)
        sql = f'SELECT "{column}", count(*) FROM images'
        if where:
            sql += f" WHERE {where}"
        sql += f' GROUP BY "{column}" ORDER BY "{column}"'
        return {value: n for value, n in self.db.execute(sql, list(params)).fetchall()}

    def rounds(self, arm: str | None = None) -> list[dict]:
        where, params = ("arm = ?", [arm]) if arm else (None, [])
        return list(self.db["rounds"].rows_where(where, params, order_by="arm, round"))


def backup(store: Store, path: str | Path) -> None:
    """Copy the database, consistently, to a new SQLite file at ``path``."""
    target = sqlite3.connect(path)
    try:
        store.db.conn.backup(target)
    finally:
        target.close()


def dump_tables(path: str | Path, *, leave_out=("id",)) -> dict[str, list[list]]:
    """Every table's rows of the SQLite file at ``path``, for comparing two stores: each row
    as its sorted ``[column, value]`` pairs without the columns ``leave_out`` and the ``*_at``
    timestamps, the rows of a table sorted. Two stores that hold the same data give equal
    dumps whatever their ids and times (a seeded run twice, a run killed and resumed)."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    out = {}
    try:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            rows = [
                sorted(
                    [k, row[k]] for k in row.keys() if k not in leave_out and not k.endswith("_at")
                )
                for row in conn.execute(f'SELECT * FROM "{table}"')
            ]
            out[table] = sorted(rows, key=repr)
    finally:
        conn.close()
    return out
