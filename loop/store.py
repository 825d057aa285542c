"""The study database: one SQLite file (``loop.db``) in the study folder.

Tables other tools read (see the README for columns):

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import sqlite_utils

from loop.errors import SchemaTooNew, StudyNotFound

SPLITS = ("pool", "labeled", "test", "excluded")
LABEL_SOURCES = ("truth", "consensus", "adjudicated", "annotator")
META_PREFIX = "meta_"


def utcnow() -> str:
    """An ISO-8601 UTC timestamp with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def dumps(value) -> str:
    """Canonical JSON (sorted keys) so equal values compare equal as text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def meta_column(key: str) -> str:
    """The ``images`` column that holds metadata ``key``.

    >>> meta_column("Instrument ID")
    'meta_instrument_id'
    """
    slug = re.sub(r"[^0-9a-zA-Z]+", "_", key.strip()).strip("_").lower()
    return META_PREFIX + (slug or "unnamed")


# --- schema ----------------------------------------------------------------------------


def _migration_1(db: sqlite_utils.Database) -> None:
    db["images"].create(
        {
            "id": int,
            "root": str,
            "path": str,
            "name": str,
            "sha256": str,
            "height": int,
            "width": int,
            "channels": int,
            "dtype": str,
            "nbytes": int,
            "split": str,
            "metadata": str,
            "version": int,
            "ingested_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"root", "path", "sha256", "split"},
        defaults={"split": "pool", "version": 1, "metadata": "{}"},
    )
    db["images"].create_index(["root", "path"], unique=True)
    db["images"].create_index(["sha256"], unique=True)
    db["images"].create_index(["split"])

    db["labels"].create(
        {
            "id": int,
            "image_id": int,
            "kind": str,  # mask | class
            "source": str,  # truth | consensus | adjudicated | annotator
            "annotator": str,  # '' unless source = annotator
            "mask_path": str,  # absolute, or relative to the study folder
            "mask_sha256": str,
            "n_objects": int,
            "class": str,
            "method": str,
            "provenance": str,  # JSON: annotations it came from, round, ...
            "version": int,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("image_id", "images", "id")],
        not_null={"image_id", "kind", "source", "annotator"},
        defaults={"annotator": "", "version": 1, "provenance": "{}"},
    )
    db["labels"].create_index(["image_id", "source", "annotator"], unique=True)

    db["tasks"].create(
        {
            "id": int,
            "image_id": int,
            "arm": str,
            "round": int,
            "purpose": str,  # annotate | adjudicate
            "tool": str,  # e.g. labelstudio
            "project": str,  # external project id
            "external_id": str,  # external task id (NULL until created)
            "overlap": int,
            "tile": str,  # JSON [row, col, height, width] or NULL for the whole image
            "status": str,  # pending | open | done | cancelled
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("image_id", "images", "id")],
        not_null={"image_id", "arm", "purpose", "status"},
        defaults={"arm": "main", "purpose": "annotate", "status": "pending", "overlap": 1},
    )
    db["tasks"].create_index(["tool", "project", "external_id"], unique=True)
    db["tasks"].create_index(["image_id"])

    annotation_columns = {
        "id": int,
        "task_id": int,
        "image_id": int,
        "annotator": str,
        "external_id": str,
        "result": str,  # raw payload from the tool, JSON
        "mask_path": str,
        "class": str,
        "n_objects": int,
        "lead_time": float,  # seconds
        "status": str,  # current | deleted
        "version": int,
        "created_at": str,
        "updated_at": str,
        "pulled_at": str,
    }
    db["annotations"].create(
        annotation_columns,
        pk="id",
        foreign_keys=[("task_id", "tasks", "id"), ("image_id", "images", "id")],
        not_null={"task_id", "annotator"},
        defaults={"status": "current", "version": 1},
    )
    db["annotations"].create_index(["task_id", "annotator"], unique=True)
    db["annotation_versions"].create(
        {**annotation_columns, "annotation_id": int, "replaced_at": str},
        pk="id",
        foreign_keys=[("annotation_id", "annotations", "id")],
    )

    db["models"].create(
        {
            "id": int,
            "kind": str,
            "path": str,
            "sha256": str,
            "params": str,
            "versions": str,
            "train_image_ids": str,
            "losses": str,
            "parent_id": int,
            "created_at": str,
        },
        pk="id",
    )

    db["rounds"].create(
        {
            "id": int,
            "arm": str,
            "round": int,
            "n_labeled": int,
            "n_objects": int,
            "model_id": int,
            "strategy": str,
            "batch": str,  # JSON list of image ids chosen
            "metrics": str,  # JSON: ap50, ... (segmentation), macro_f1 ... (classification)
            "agreement": str,  # JSON
            "annotator_hours": float,
            "timings": str,  # JSON: seconds per step
            "status": str,
            "started_at": str,
            "finished_at": str,
        },
        pk="id",
        foreign_keys=[("model_id", "models", "id")],
        not_null={"arm", "round"},
        defaults={"arm": "main", "metrics": "{}", "timings": "{}", "status": "started"},
    )
    db["rounds"].create_index(["arm", "round"], unique=True)

    db["changes"].create(
        {
            "id": int,
            "image_id": int,
            "field": str,  # content | metadata | mask | class
            "old": str,
            "new": str,
            "at": str,
        },
        pk="id",
        foreign_keys=[("image_id", "images", "id")],
    )
    db["skipped"].create(
        {"id": int, "path": str, "reason": str, "message": str, "at": str},
        pk="id",
        not_null={"path", "reason"},
    )
    db["skipped"].create_index(["path"], unique=True)
    db["splits"].create(
        {"id": int, "params": str, "counts": str, "at": str},
        pk="id",
    )


def _migration_2(db: sqlite_utils.Database) -> None:
    """Annotation-tool projects and annotator accounts (no secrets: tokens stay in the
    study's 0600 credentials file)."""
    db["tool_projects"].create(
        {
            "id": int,
            "tool": str,
            "purpose": str,  # annotate | adjudicate
            "project": str,  # external project id
            "title": str,
            "overlap": int,
            "created_at": str,
        },
        pk="id",
        not_null={"tool", "purpose", "project"},
    )
    db["tool_projects"].create_index(["tool", "purpose"], unique=True)
    db["annotators"].create(
        {
            "id": int,
            "name": str,
            "tool": str,
            "external_id": str,  # user id in the tool
            "email": str,
            "profile": str,  # noise profile of a simulated annotator, else NULL
            "created_at": str,
        },
        pk="id",
        not_null={"name", "tool"},
    )
    db["annotators"].create_index(["tool", "name"], unique=True)
    db["annotators"].create_index(["tool", "external_id"], unique=True)


def _migration_3(db: sqlite_utils.Database) -> None:
    """Model decisions, held-out evaluations, pool scores and the batches chosen from them."""
    for column, kind in (
        ("task", str),  # segmentation | classification
        ("status", str),  # accepted | rejected
        ("decision", str),  # why (validation figures of the new and the previous model)
        ("val_image_ids", str),  # JSON list: labeled images kept out of training
        ("val_metrics", str),  # JSON
        ("label_sha256", str),  # digest of the training labels: same labels -> same model
        ("device", str),
        ("seconds", float),
    ):
        db["models"].add_column(column, kind)
    db["evaluations"].create(
        {
            "id": int,
            "model_id": int,
            "split": str,
            "metrics": str,
            "per_image": str,
            "seconds": float,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("model_id", "models", "id")],
    )
    db["evaluations"].create_index(["model_id", "split"], unique=True)
    db["scores"].create(
        {
            "id": int,
            "model_id": int,
            "image_id": int,
            "measures": str,
            "embedding": bytes,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("model_id", "models", "id"), ("image_id", "images", "id")],
    )
    db["scores"].create_index(["model_id", "image_id"], unique=True)
    db["selections"].create(
        {
            "id": int,
            "model_id": int,
            "strategy": str,
            "k": int,
            "seed": int,
            "image_ids": str,
            "scores": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("model_id", "models", "id")],
    )


def _migration_4(db: sqlite_utils.Database) -> None:
    """Arms of the loop: each arm's labeled images, the arm a model was trained for, and the
    per-step record of a round (``timings`` keys are the steps done)."""
    db["arm_images"].create(
        {"id": int, "arm": str, "image_id": int, "round": int, "added_at": str},
        pk="id",
        foreign_keys=[("image_id", "images", "id")],
        not_null={"arm", "image_id", "round"},
    )
    db["arm_images"].create_index(["arm", "image_id"], unique=True)
    db["models"].add_column("arm", str)
    for column, kind in (("seed", int), ("n_batch", int), ("notes", str)):
        db["rounds"].add_column(column, kind)


def _migration_5(db: sqlite_utils.Database) -> None:
    """Adjudication: the reviewer whose label decides an ``adjudicate`` task."""
    db["tasks"].add_column("reviewer", str)


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite_utils.Database) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`, one migration per transaction.

    Returns
    -------
    int
        The number of migrations applied.

    Raises
    ------
    SchemaTooNew
        When the file was written by a newer loop.
    """
    current = db.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"the study database has schema version {current}, this loop knows up to "
            f"{SCHEMA_VERSION}: upgrade loop (pip install -U loop-al)"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        with db.atomic():
            MIGRATIONS[version - 1](db)
            db.execute(f"PRAGMA user_version = {version}")
    return SCHEMA_VERSION - current


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
        self.db = sqlite_utils.Database(self.path)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA busy_timeout = 10000")
        migrate(self.db)

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

    def ensure_meta_columns(self, keys) -> None:
        columns = {c.name for c in self.db["images"].columns}
        for key in keys:
            column = meta_column(key)
            if column not in columns:
                # no declared type: metadata keeps its JSON type (numbers compare as numbers)
                self.db.execute(f'ALTER TABLE images ADD COLUMN "{column}"')
                columns.add(column)

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
