"""Queries of the annotation tool's projects and tasks: the study's project per purpose (with
the pull clock and the tasks it did not map), the tasks created there, their ids in the tool
and their aliases (adopted duplicates). Functions take a :class:`~loop.store.db.Store`; writes
that belong together are one transaction. Re-exported by :mod:`loop.store.annotations`.
"""

from __future__ import annotations

import json

from loop.store.db import Store, utcnow


def tool_projects(store: Store, tool: str) -> list[dict]:
    """The study's projects in ``tool`` (annotate, adjudicate), oldest first."""
    return list(store.db["tool_projects"].rows_where("tool = ?", [tool], order_by="id"))


def record_pull(store: Store, project_id: int, *, clock, whole: bool) -> None:
    """After a pull of a project (row ``project_id``): the tool's clock at its start, and
    when it read every task, that too."""
    fields = {"last_pull_at": clock.isoformat()}
    if whole:
        fields["full_pull_at"] = clock.isoformat()
    with store.atomic() as db:
        db["tool_projects"].update(project_id, fields)


def record_unmapped(store: Store, project_id: int, external_ids) -> None:
    """The tool's tasks of a project that the store cannot map (shown by ``loop status``)."""
    with store.atomic() as db:
        db["tool_projects"].update(project_id, {"unmapped": json.dumps(sorted(external_ids))})


def unmapped_of(project: dict) -> set[str]:
    """A project row's unmapped task ids (as its last pull recorded them)."""
    return set(json.loads(project["unmapped"] or "[]"))


def count_unmapped(store: Store) -> int:
    """Unmapped tasks over all of the study's projects."""
    rows = store.db.execute("SELECT unmapped FROM tool_projects").fetchall()
    return sum(len(json.loads(row[0] or "[]")) for row in rows)


def mapped_tasks(store: Store, tool: str, project: str) -> dict[str, dict]:
    """The tasks of a project that the tool has: external id -> task row."""
    rows = store.db["tasks"].rows_where(
        "tool = ? AND project = ? AND external_id IS NOT NULL", [tool, project]
    )
    return {t["external_id"]: t for t in rows}


def count_mapped(store: Store, tool: str) -> int:
    return store.db.execute(
        "SELECT count(*) FROM tasks WHERE tool = ? AND external_id IS NOT NULL", [tool]
    ).fetchone()[0]


def count_done(store: Store, tool: str) -> int:
    """Tasks (images and adjudications, not tiles) with all their annotations."""
    return store.db.execute(
        "SELECT count(*) FROM tasks WHERE tool = ? AND status = 'done' AND purpose != 'tile'",
        [tool],
    ).fetchone()[0]


def aliases(store: Store, tool: str, project: str) -> dict[int, set[str]]:
    """Our task id -> the tool's other tasks of it (duplicates adopted by a pull)."""
    out: dict[int, set[str]] = {}
    for row in store.db["task_aliases"].rows_where("tool = ? AND project = ?", [tool, project]):
        out.setdefault(row["task_id"], set()).add(row["external_id"])
    return out


def add_alias(store: Store, task_id: int, *, tool: str, project: str, external_id: str) -> None:
    with store.atomic() as db:
        db["task_aliases"].insert(
            {
                "task_id": task_id,
                "tool": tool,
                "project": project,
                "external_id": external_id,
                "adopted_at": utcnow(),
            },
            ignore=True,
        )


def drop_alias(store: Store, *, tool: str, project: str, external_id: str) -> None:
    with store.atomic() as db:
        db["task_aliases"].delete_where(
            "tool = ? AND project = ? AND external_id = ?", [tool, project, external_id]
        )


def project_of(store: Store, tool: str, purpose: str) -> dict | None:
    """The study's project row in ``tool`` for ``purpose`` (annotate, adjudicate), if any."""
    rows = store.db["tool_projects"].rows_where("tool = ? AND purpose = ?", [tool, purpose])
    return next(iter(rows), None)


def save_project(
    store: Store, *, tool: str, purpose: str, project: str, title: str, overlap: int
) -> None:
    """Record the study's project (a new one, or the same one with this overlap). A project
    that replaces another starts with no pull clock: its first pull reads every task."""
    old = project_of(store, tool, purpose)
    with store.atomic() as db:
        if old is None:
            db["tool_projects"].insert(
                {
                    "tool": tool,
                    "purpose": purpose,
                    "project": project,
                    "title": title,
                    "overlap": overlap,
                    "created_at": utcnow(),
                }
            )
            return
        fields = {"project": project, "overlap": overlap}
        if project != old["project"]:
            fields.update(last_pull_at=None, full_pull_at=None, unmapped=None)
        db["tool_projects"].update(old["id"], fields)


def task_of(store: Store, image_id: int, *, tool: str, project: str, purpose: str) -> int | None:
    """The id of the image's task in a project for ``purpose``, if it has one."""
    row = store.db.execute(
        "SELECT id FROM tasks WHERE image_id = ? AND tool = ? AND project = ? AND purpose = ?",
        [image_id, tool, project, purpose],
    ).fetchone()
    return None if row is None else row[0]


def add_task(store: Store, task: dict, tiles=()) -> int:
    """Insert a task (and its tile tasks, one per box) in one transaction; returns its id."""
    with store.atomic() as db:
        task_id = db["tasks"].insert(task).last_pk
        db["tasks"].insert_all(
            {**task, "purpose": "tile", "status": "pending", "tile": json.dumps(box)}
            for box in tiles
        )
    return task_id


def pending_tasks(store: Store, tool: str, project: str) -> list[dict]:
    """A project's tasks not yet created in the tool, in id order."""
    rows = store.db["tasks"].rows_where(
        "tool = ? AND project = ? AND status = 'pending'", [tool, project], order_by="id"
    )
    return list(rows)


def mark_created(store: Store, external_ids: dict[int, str]) -> None:
    """Our task id -> its id in the tool, now open there; one transaction."""
    now = utcnow()
    with store.atomic() as db:
        for task_id, external in external_ids.items():
            db["tasks"].update(
                task_id, {"external_id": str(external), "status": "open", "updated_at": now}
            )
