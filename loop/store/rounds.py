"""Queries of the rounds table (one row per arm and round: strategy, batch, model, figures,
step timings) and of the arms' labeled sets (``arm_images``). Functions take a
:class:`~loop.store.db.Store`."""

from __future__ import annotations

import json

from loop.store.db import Store, dumps, utcnow


def round_row(store: Store, arm: str, number: int) -> dict | None:
    rows = store.db["rounds"].rows_where("arm = ? AND round = ?", [arm, number])
    return next(iter(rows), None)


def start_round(store: Store, arm: str, number: int, *, strategy: str, seed: int) -> dict:
    """The arm's row for round ``number``, made (status ``started``) when missing."""
    row = round_row(store, arm, number)
    if row is None:
        with store.atomic() as db:
            db["rounds"].insert(
                {
                    "arm": arm,
                    "round": number,
                    "strategy": strategy,
                    "seed": seed,
                    "status": "started",
                    "started_at": utcnow(),
                    "metrics": "{}",
                    "timings": "{}",
                }
            )
        row = round_row(store, arm, number)
    return row


def update_round(store: Store, round_id: int, fields: dict) -> dict:
    """Write ``fields`` of a round; returns the row as stored."""
    with store.atomic() as db:
        db["rounds"].update(round_id, fields)
    return store.db["rounds"].get(round_id)


def annotations_of_image(store: Store, image_id: int) -> int:
    """Annotations of an image's annotation and region tasks that are not deleted (skipped
    and malformed ones count: the annotator had their turn)."""
    return store.db.execute(
        "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id "
        "WHERE t.image_id = ? AND t.purpose IN ('annotate', 'region') AND a.status != 'deleted'",
        [image_id],
    ).fetchone()[0]


def lead_seconds(store: Store, image_ids) -> float | None:
    """Annotators' seconds on these images (their annotations' lead times), if recorded."""
    ids = list(image_ids)
    marks = ",".join("?" * len(ids))
    return store.db.execute(
        "SELECT sum(a.lead_time) FROM annotations a JOIN tasks t ON t.id = a.task_id "
        f"WHERE t.image_id IN ({marks}) AND t.purpose IN ('annotate', 'region') "
        "AND a.status != 'deleted'",
        ids,
    ).fetchone()[0]


def batches(store: Store, arm: str, *, up_to: int | None = None) -> set[int]:
    """The image ids of the arm's batches (of rounds ``<= up_to``, when given)."""
    sql, params = "arm = ? AND batch IS NOT NULL", [arm]
    if up_to is not None:
        sql += " AND round <= ?"
        params.append(up_to)
    out: set[int] = set()
    for row in store.db["rounds"].rows_where(sql, params):
        out.update(json.loads(row["batch"]))
    return out


def arm_images(store: Store, arm: str, *, before: int | None = None) -> list[int]:
    """The labeled image ids of an arm (those usable by round ``before``, when given)."""
    sql, params = "SELECT image_id FROM arm_images WHERE arm = ?", [arm]
    if before is not None:
        sql += " AND round <= ?"
        params.append(before)
    return [r[0] for r in store.db.execute(sql + " ORDER BY image_id", params)]


def arm_regions(store: Store, arm: str, *, before: int | None = None) -> dict[int, list]:
    """Image id -> the regions (``row, col, height, width``) the arm chose in its rounds
    (those before round ``before``, when given); images it chose whole are not in it."""
    sql, params = "arm = ? AND regions IS NOT NULL", [arm]
    if before is not None:
        sql += " AND round < ?"
        params.append(before)
    out: dict[int, list] = {}
    for row in store.db["rounds"].rows_where(sql, params):
        for image_id, *box in json.loads(row["regions"]):
            out.setdefault(int(image_id), []).append([int(v) for v in box])
    return out


def whole_task_images(store: Store, arm: str) -> set[int]:
    """The images the arm pushed whole (annotation or tile tasks of its own)."""
    rows = store.db.execute(
        "SELECT DISTINCT image_id FROM tasks WHERE arm = ? AND purpose IN ('annotate', 'tile')",
        [arm],
    )
    return {r[0] for r in rows}


def has_arm(store: Store, arm: str) -> bool:
    return (
        store.db.execute("SELECT 1 FROM arm_images WHERE arm = ? LIMIT 1", [arm]).fetchone()
        is not None
    )


def initial_images(store: Store) -> list[int]:
    """The images every arm started from (round 0 of any arm)."""
    return [
        r[0] for r in store.db.execute("SELECT DISTINCT image_id FROM arm_images WHERE round = 0")
    ]


def add_arm_images(store: Store, arm: str, image_ids, *, usable_from: int) -> int:
    """Add images to an arm's labeled set, usable from round ``usable_from`` (idempotent);
    returns how many the arm has for that round (counted: a re-run gives the same figure)."""
    now = utcnow()
    rows = [{"arm": arm, "image_id": i, "round": usable_from, "added_at": now} for i in image_ids]
    if rows:
        with store.atomic() as db:
            db["arm_images"].insert_all(rows, ignore=True)
    return store.db.execute(
        "SELECT count(*) FROM arm_images WHERE arm = ? AND round = ?", [arm, usable_from]
    ).fetchone()[0]


def initial_count(store: Store) -> int:
    """Images every arm started from."""
    return store.db.execute(
        "SELECT count(DISTINCT image_id) FROM arm_images WHERE round = 0"
    ).fetchone()[0]


def effort_of_batch(store: Store, batch, regions=None) -> float:
    """The expert effort spent on a round's batch: the weighted edits
    (``annotations.effort``) of every current annotation of its images' annotation and tile
    tasks, or, for a batch of ``regions`` (``image_id, row, col, height, width``), of those
    regions' tasks; annotations without a recorded effort count nothing."""
    total = 0.0
    if regions:
        for image_id, *box in regions:
            total += store.db.execute(
                "SELECT coalesce(sum(a.effort), 0) FROM annotations a JOIN tasks t "
                "ON t.id = a.task_id WHERE t.purpose = 'region' AND t.image_id = ? "
                "AND t.region = ? AND a.status = 'current'",
                [image_id, dumps([int(v) for v in box])],
            ).fetchone()[0]
        return float(total)
    ids = list(batch)
    if not ids:
        return 0.0
    marks = ",".join("?" * len(ids))
    return float(
        store.db.execute(
            "SELECT coalesce(sum(a.effort), 0) FROM annotations a JOIN tasks t "
            f"ON t.id = a.task_id WHERE t.image_id IN ({marks}) "
            "AND t.purpose IN ('annotate', 'tile') AND a.status = 'current'",
            ids,
        ).fetchone()[0]
    )
