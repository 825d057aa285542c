"""Queries of what the annotation tool holds: annotators' accounts and annotation rows with
their versions (its projects, tasks and aliases: :mod:`loop.store.tasks`, re-exported here).
Functions take a :class:`~loop.store.db.Store`; writes that belong together are one
transaction.
"""

from __future__ import annotations

from loop.store.db import Store, utcnow
from loop.store.tasks import (  # noqa: F401 (q.add_task, ... as before)
    add_alias,
    add_task,
    aliases,
    count_done,
    count_mapped,
    count_unmapped,
    drop_alias,
    mapped_tasks,
    mark_created,
    pending_tasks,
    project_of,
    record_pull,
    record_unmapped,
    save_project,
    task_of,
    tool_projects,
    unmapped_of,
)


def annotator_names(store: Store, tool: str) -> dict[str, str]:
    """The tool's user id -> our annotator name, for the accounts the study knows."""
    return dict(
        store.db.execute(
            "SELECT external_id, name FROM annotators WHERE tool = ?", [tool]
        ).fetchall()
    )


def current_annotations(store: Store, task_id: int) -> dict[str, dict]:
    """Annotator -> the task's annotation row (any status)."""
    rows = store.db["annotations"].rows_where("task_id = ?", [task_id])
    return {a["annotator"]: a for a in rows}


def write_annotations(
    store: Store,
    task: dict,
    prepared: list[tuple[dict | None, dict]],
    current: dict[str, dict],
    present: set[str],
) -> tuple[int, int, int, str]:
    """Write a task's new and changed annotations (``prepared``: (current row or None, new
    row)), mark those of annotators not ``present`` any more deleted, and set the task's
    status, in one transaction; returns (new, updated, deleted, status)."""
    db = store.db
    now = utcnow()
    new = updated = deleted = 0
    with store.atomic():
        for old, row in prepared:
            if old is None:
                db["annotations"].insert(
                    {**row, "created_at": now, "updated_at": now, "pulled_at": now}
                )
                new += 1
            else:
                _archive(db, old, now)
                db["annotations"].update(old["id"], {**row, "updated_at": now, "pulled_at": now})
                updated += 1
        for name, old in current.items():
            if name not in present and old["status"] != "deleted":
                _archive(db, old, now)
                db["annotations"].update(
                    old["id"],
                    {
                        "status": "deleted",
                        "version": old["version"] + 1,
                        "updated_at": now,
                        "pulled_at": now,
                    },
                )
                deleted += 1
        n_done = db.execute(
            "SELECT count(*) FROM annotations WHERE task_id = ? AND status = 'current'",
            [task["id"]],
        ).fetchone()[0]
        status = "done" if n_done >= (task["overlap"] or 1) else "open"
        if task["status"] == "stale":  # a region of an image that changed: stays set aside
            status = "stale"
        if status != task["status"]:
            db["tasks"].update(task["id"], {"status": status, "updated_at": now})
    return new, updated, deleted, status


def _archive(db, old: dict, now: str) -> None:
    db["annotation_versions"].insert(
        {
            **{k: v for k, v in old.items() if k != "id"},
            "annotation_id": old["id"],
            "replaced_at": now,
        }
    )


def tiled_images(store: Store) -> list[tuple[dict, list[dict]]]:
    """(the image's own task, its tile tasks in order) for each image annotated as tiles."""
    db = store.db
    parents = db.query(
        "SELECT p.* FROM tasks p WHERE p.purpose = 'annotate' AND p.external_id IS NULL "
        "AND EXISTS (SELECT 1 FROM tasks t WHERE t.purpose = 'tile' AND t.image_id = p.image_id "
        "AND t.tool = p.tool AND t.project = p.project) ORDER BY p.id"
    )
    out = []
    for parent in list(parents):
        tiles = db["tasks"].rows_where(
            "purpose = 'tile' AND image_id = ? AND tool = ? AND project = ?",
            [parent["image_id"], parent["tool"], parent["project"]],
            order_by="id",
        )
        out.append((parent, list(tiles)))
    return out


def live_annotations(store: Store, task_ids) -> list[dict]:
    """The annotation rows of these tasks that are not deleted."""
    ids = list(task_ids)
    marks = ", ".join("?" for _ in ids)
    return list(
        store.db["annotations"].rows_where(f"task_id IN ({marks}) AND status != 'deleted'", ids)
    )


def known_classes(store: Store) -> list[str]:
    """The classes of a classification study's ground truth and consensus labels."""
    rows = store.db.execute(
        "SELECT DISTINCT class FROM labels WHERE kind = 'class' AND class IS NOT NULL ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def reviews(store: Store) -> tuple[int, int]:
    """(adjudication tasks sent, those the reviewer has decided)."""
    return store.db.execute(
        "SELECT count(*), count(a.id) FROM tasks t LEFT JOIN annotations a ON a.task_id = t.id "
        "AND a.annotator = t.reviewer AND a.status = 'current' WHERE t.purpose = 'adjudicate'"
    ).fetchone()


def annotation_summary(store: Store, *, min_annotations: int) -> dict:
    """What is in annotation: images pushed, tasks by status, tiles, current annotations per
    annotator, done tasks with too few valid annotations for a consensus (fewer than
    ``min_annotations``, or the overlap), malformed and edited-by-others annotations per
    annotator, the effort of correcting pre-annotations per annotator, unmapped tasks."""
    db = store.db
    tasks = dict(
        db.execute(
            "SELECT status, count(*) FROM tasks WHERE purpose = 'annotate' GROUP BY status"
        ).fetchall()
    )
    per_annotator = dict(
        db.execute(
            "SELECT a.annotator, count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id "
            "WHERE t.purpose = 'annotate' AND a.status = 'current' GROUP BY a.annotator "
            "ORDER BY a.annotator"
        ).fetchall()
    )
    too_few = db.execute(
        "SELECT count(*) FROM tasks t WHERE t.purpose = 'annotate' AND t.status = 'done' "
        "AND (SELECT count(*) FROM annotations a WHERE a.task_id = t.id "
        "AND a.status = 'current') < min(coalesce(t.overlap, 1), ?) "
        "AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.image_id = t.image_id "
        "AND l.source IN ('consensus', 'adjudicated'))",
        [min_annotations],
    ).fetchone()[0]
    malformed, edited = (
        dict(
            db.execute(
                "SELECT annotator, count(*) FROM annotations WHERE status = ? "
                "GROUP BY annotator ORDER BY annotator",
                [status],
            ).fetchall()
        )
        for status in ("malformed", "edited")
    )
    effort = {
        name: {"annotations": n, "effort": total, "lead_time": lead}
        for name, n, total, lead in db.execute(
            "SELECT annotator, count(*), sum(effort), sum(lead_time) FROM annotations "
            "WHERE status = 'current' AND effort IS NOT NULL GROUP BY annotator "
            "ORDER BY annotator"
        ).fetchall()
    }
    return {
        "images_pushed": sum(tasks.values()),
        "unmapped_tasks": count_unmapped(store),  # the tool's tasks that are not the study's
        "too_few_annotations": too_few,
        "tasks": tasks,  # pending (not yet in the tool), open, done
        "tiles": db["tasks"].count_where("purpose = 'tile'"),
        "annotations": per_annotator,  # current annotations of whole images
        # kept as sent but unusable (undecodable RLE, another tool's region): by annotator
        "malformed": malformed,
        # last saved by someone else than their author: kept, not used until resolved
        "edited": edited,
        # corrections of pre-annotations: weighted edits (loop.core.effort) and Label
        # Studio's lead time, summed per annotator over their current annotations
        "effort": effort,
    }


def current_by_task(store: Store, *, round: int | None = None) -> dict[int, list[dict]]:
    """Task id -> the current annotations of whole-image annotation tasks (of one round, when
    given), with the task's round and overlap, by annotator."""
    sql = (
        "SELECT a.*, t.round AS task_round, t.overlap AS task_overlap "
        "FROM annotations a JOIN tasks t ON t.id = a.task_id "
        "WHERE a.status = 'current' AND t.purpose = 'annotate'"
    )
    params: list = []
    if round is not None:
        sql += " AND t.round = ?"
        params.append(round)
    by_task: dict[int, list[dict]] = {}
    for row in store.db.query(sql + " ORDER BY a.task_id, a.annotator", params):
        by_task.setdefault(row["task_id"], []).append(row)
    return by_task


def annotations_of_task(store: Store, task_id: int, statuses=("current",)) -> list[dict]:
    """A task's annotations with one of ``statuses``, by annotator."""
    marks = ", ".join("?" for _ in statuses)
    rows = store.db["annotations"].rows_where(
        f"task_id = ? AND status IN ({marks})", [task_id, *statuses], order_by="annotator"
    )
    return list(rows)


def annotators_of_image(store: Store, image_id: int) -> list[str]:
    """Who has a current annotation of the image's annotation task, by name."""
    rows = store.db.execute(
        "SELECT a.annotator FROM annotations a JOIN tasks t ON t.id = a.task_id "
        "WHERE t.image_id = ? AND t.purpose = 'annotate' AND a.status = 'current' "
        "ORDER BY a.annotator",
        [image_id],
    )
    return [r[0] for r in rows]


def has_account(store: Store, tool: str, name: str) -> bool:
    row = store.db.execute(
        "SELECT 1 FROM annotators WHERE tool = ? AND name = ?", [tool, name]
    ).fetchone()
    return row is not None


def arms_of_tasks(store: Store, task_ids) -> dict[int, str]:
    """Task id -> the arm that chose its image."""
    ids = list(task_ids)
    rows = store.db.execute(
        f"SELECT id, arm FROM tasks WHERE id IN ({', '.join('?' for _ in ids)})", ids
    )
    return dict(rows.fetchall())


def review_tasks(store: Store) -> list[dict]:
    """Adjudication tasks, oldest first."""
    return list(store.db["tasks"].rows_where("purpose = 'adjudicate'", order_by="id"))


def work_by_annotator(store: Store) -> dict[str, tuple[int, float, float | None]]:
    """Annotator -> (current annotations of whole images and regions, hours of lead time,
    effort: the weighted edits of the pre-annotations, None when none was recorded)."""
    rows = store.db.execute(
        "SELECT a.annotator, count(*), coalesce(sum(a.lead_time), 0) / 3600.0, "
        "sum(a.effort) FROM annotations a JOIN tasks t ON t.id = a.task_id "
        "WHERE a.status = 'current' AND t.purpose != 'tile' "  # a tiled image counts once
        "GROUP BY a.annotator ORDER BY a.annotator"
    )
    return {name: (n, hours, effort) for name, n, hours, effort in rows}
