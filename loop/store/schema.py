"""The schema of the study database and its migrations (``PRAGMA user_version``).

Each migration runs in one transaction; a database written by a newer loop is refused.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from loop.errors import SchemaTooNew
from loop.store.schema_regions import LATER


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
            "status": str,  # pending | open | done | cancelled | stale (image changed)
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


def _migration_6(db: sqlite_utils.Database) -> None:
    """Incremental pull: per project, the tool's clock before the last pull (the next asks
    only for tasks updated since) and before the last full one, and the tool's tasks that
    the store cannot map (a JSON list of their ids, shown by ``loop status``); and the tool's
    other tasks of one of ours (duplicates whose data carries our key: their annotations are
    the task's too)."""
    for column, kind in (("last_pull_at", str), ("full_pull_at", str), ("unmapped", str)):
        db["tool_projects"].add_column(column, kind)
    db["task_aliases"].create(
        {
            "id": int,
            "task_id": int,
            "tool": str,
            "project": str,
            "external_id": str,
            "adopted_at": str,
        },
        pk="id",
        not_null={"task_id", "tool", "project", "external_id"},
        foreign_keys=[("task_id", "tasks", "id")],
    )
    db["task_aliases"].create_index(["tool", "project", "external_id"], unique=True)


def _migration_7(db: sqlite_utils.Database) -> None:
    """Several kinds of object (``[labels] others``): the class of each object of an
    annotation's or a label's mask, as a JSON list (label ``k`` at ``k - 1``; NULL: every
    object is of the main kind)."""
    for table in ("annotations", "annotation_versions", "labels"):
        db[table].add_column("object_classes", str)


def _migration_8(db: sqlite_utils.Database) -> None:
    """Scale-out: the device (``cpu``, ``cuda:0``) that measured each score row."""
    db["scores"].add_column("device", str)


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
    _migration_6,
    _migration_7,
    _migration_8,
    *LATER,
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
