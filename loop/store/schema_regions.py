"""Migrations 9 and later of the study database (:mod:`loop.store.schema` applies them in
order): metadata keys, effort, regions and partial labels."""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlite_utils


def _migration_9(db: sqlite_utils.Database) -> None:
    """The metadata key behind each ``meta_*`` column of ``images``, so that two keys that
    would share a column (``Key With Spaces`` and ``key_with_spaces``) are told apart.
    Columns made before are claimed by the first key that uses them again."""
    db["meta_keys"].create({"column": str, "key": str}, pk="column")


def _migration_10(db: sqlite_utils.Database) -> None:
    """Expert effort: the edits an annotation made to the pre-annotation it started from
    (JSON counts, :class:`loop.core.effort.Edits`) and their weighted sum."""
    for table in ("annotations", "annotation_versions"):
        db[table].add_column("edits", str)
        db[table].add_column("effort", float)


def _migration_11(db: sqlite_utils.Database) -> None:
    """Regions: a model's measures of each region of an image (``values``: JSON rows of
    ``row, col, height, width`` and the measures, for regions of ``size``), and the regions a
    batch chose (``selections.regions``: JSON rows of ``image_id, row, col, height, width``)."""
    db["region_scores"].create(
        {"model_id": int, "image_id": int, "size": int, "measures": str, "values": str},
        pk=("model_id", "image_id", "size"),
    )
    db["selections"].add_column("regions", str)


def _migration_12(db: sqlite_utils.Database) -> None:
    """Partial labels: the pixels whose label is known (``known_path``, a 0/1 TIFF; NULL:
    known everywhere, as every label before) and their share of the image."""
    db["labels"].add_column("known_path", str)
    db["labels"].add_column("known_fraction", float)


def _migration_13(db: sqlite_utils.Database) -> None:
    """Region tasks (``purpose = 'region'``): the region to annotate, in image coordinates
    (``tasks.tile`` is then the crop shown around it)."""
    db["tasks"].add_column("region", str)


def _migration_14(db: sqlite_utils.Database) -> None:
    """A round of a region strategy: the regions its select step chose (JSON rows of
    ``image_id, row, col, height, width``); ``batch`` keeps their images."""
    db["rounds"].add_column("regions", str)


def _migration_15(db: sqlite_utils.Database) -> None:
    """Repair: before 2026-12-07 a whole consensus written over a partial label kept the
    partial label's known mask; a label whose provenance names no region is known
    everywhere."""
    rows = db.execute("SELECT id, provenance FROM labels WHERE known_path IS NOT NULL")
    for label_id, provenance in rows.fetchall():
        if "regions" not in json.loads(provenance or "{}"):
            db["labels"].update(label_id, {"known_path": None, "known_fraction": None})


LATER: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _migration_9,
    _migration_10,
    _migration_11,
    _migration_12,
    _migration_13,
    _migration_14,
    _migration_15,
)
