"""Queries of region tasks and region batches. Functions take a
:class:`~loop.store.db.Store`."""

from __future__ import annotations

import json

from loop.store.db import Store, utcnow


def current_by_region_task(store: Store) -> dict[int, list[dict]]:
    """Task id -> the current annotations of region tasks, with the task's round, overlap,
    crop (``task_tile``) and region (``task_region``), by annotator."""
    rows = store.db.execute(
        "SELECT a.*, t.round AS task_round, t.overlap AS task_overlap, t.tile AS task_tile, "
        "t.region AS task_region, t.created_at AS task_created_at FROM annotations a "
        "JOIN tasks t ON t.id = a.task_id WHERE a.status = 'current' AND t.purpose = 'region' "
        "AND t.status != 'stale' ORDER BY a.task_id, a.annotator"
    )
    columns = [c[0] for c in rows.description]
    out: dict[int, list[dict]] = {}
    for values in rows.fetchall():
        row = dict(zip(columns, values))
        out.setdefault(row["task_id"], []).append(row)
    return out


def region_task_of(store: Store, image_id: int, region: str, *, tool: str, project: str):
    """The id of the task of this region (JSON) of an image in a project, if it has one."""
    row = store.db.execute(
        "SELECT id FROM tasks WHERE image_id = ? AND region = ? AND tool = ? AND project = ? "
        "AND purpose = 'region' AND status != 'stale'",
        [image_id, region, tool, project],
    ).fetchone()
    return None if row is None else row[0]


def task_regions(store: Store, task_ids) -> list[list[int]]:
    """The regions (``row, col, height, width``) of these region tasks."""
    ids = list(task_ids)
    rows = store.db.execute(
        f"SELECT region FROM tasks WHERE id IN ({','.join('?' * len(ids))})", ids
    )
    return [json.loads(row[0]) for row in rows]


def region_tasks_of_image(store: Store, image_id: int) -> list[int]:
    """The ids of the image's region tasks."""
    return [
        r[0]
        for r in store.db.execute(
            "SELECT id FROM tasks WHERE image_id = ? AND purpose = 'region'", [image_id]
        )
    ]


def changed_since(store: Store, image_id: int, when: str | None) -> bool:
    """Whether the image's content changed (a re-ingest of another file) after ``when``."""
    return (
        store.db.execute(
            "SELECT 1 FROM changes WHERE image_id = ? AND field = 'content' AND at > ? LIMIT 1",
            [image_id, when or ""],
        ).fetchone()
        is not None
    )


def mark_stale(store: Store, task_id: int) -> None:
    """A region task whose image changed: kept with its annotations, never merged, and a new
    push of the region makes a new task."""
    with store.atomic() as db:
        db["tasks"].update(task_id, {"status": "stale", "updated_at": utcnow()})


def latest_region_selection(store: Store) -> dict | None:
    """The newest selection that chose regions, if any."""
    rows = store.db["selections"].rows_where("regions IS NOT NULL", order_by="id desc", limit=1)
    return next(iter(rows), None)


def region_summary(store: Store) -> dict:
    """Region tasks by status and the partial labels they made."""
    tasks = dict(
        store.db.execute(
            "SELECT status, count(*) FROM tasks WHERE purpose = 'region' GROUP BY status"
        ).fetchall()
    )
    partial = store.db.execute(
        "SELECT count(*), avg(known_fraction) FROM labels WHERE known_path IS NOT NULL"
    ).fetchone()
    return {"tasks": tasks, "partial_labels": partial[0], "mean_known_fraction": partial[1]}
