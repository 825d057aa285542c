"""Queries of the images table by split and metadata, beside the :class:`~loop.store.db.Store`
methods for single images. Functions take a :class:`~loop.store.db.Store`."""

from __future__ import annotations

from loop.store.db import META_PREFIX, Store, dumps, utcnow


def truth_by_split(store: Store) -> dict[str, int]:
    """Split -> images with ground truth."""
    rows = store.db.execute(
        "SELECT i.split, count(*) FROM images i JOIN labels l ON l.image_id = i.id "
        "AND l.source = 'truth' GROUP BY i.split ORDER BY i.split"
    )
    return dict(rows.fetchall())


def distinct_values(store: Store, key: str) -> tuple[int, bool]:
    """(distinct values of a metadata key, whether all of them are plain text: not numbers,
    JSON lists or objects)."""
    column = f'"{META_PREFIX}{key}"'
    n, non_text = store.db.execute(
        f"SELECT count(DISTINCT {column}), sum(typeof({column}) NOT IN ('text', 'null') "
        f"OR {column} LIKE '[%' OR {column} LIKE '{{%') FROM images"
    ).fetchone()
    return n, not non_text


def by_value_and_split(store: Store, key: str) -> dict[str, dict[str, int]] | None:
    """Value of a metadata key -> split -> images (None when no image has the key)."""
    column = META_PREFIX + key
    if column not in {c.name for c in store.db["images"].columns}:
        return None
    table: dict = {}
    for value, split, n in store.db.execute(
        f'SELECT "{column}", split, count(*) FROM images GROUP BY 1, 2 ORDER BY 1, 2'
    ).fetchall():
        table.setdefault(str(value), {})[split] = n
    return table


def skipped_by_reason(store: Store) -> dict[str, int]:
    rows = store.db.execute("SELECT reason, count(*) FROM skipped GROUP BY reason")
    return dict(rows.fetchall())


def add_image(store: Store, row: dict, *, now: str) -> int:
    """Insert a new image (in the pool, version 1); returns its id."""
    fields = {**row, "split": "pool", "version": 1, "ingested_at": now, "updated_at": now}
    with store.atomic() as db:
        return db["images"].insert(fields).last_pk


def update_image(store: Store, image: dict, row: dict, *, now: str) -> None:
    """Rewrite an image's file facts and metadata, its version + 1."""
    with store.atomic() as db:
        db["images"].update(
            image["id"], {**row, "version": image["version"] + 1, "updated_at": now}
        )


def set_splits(store: Store, assignment: dict[int, str], *, params: dict, counts: dict) -> None:
    """Move images to their splits (image id -> split) and record the split made, in one
    transaction."""
    with store.atomic() as db:
        for split in sorted(set(assignment.values())):
            ids = [i for i, s in assignment.items() if s == split]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                db.execute(
                    f"UPDATE images SET split = ? WHERE id IN ({','.join('?' * len(chunk))})",
                    [split, *chunk],
                )
        db["splits"].insert({"params": dumps(params), "counts": dumps(counts), "at": utcnow()})


def has_column(store: Store, column: str) -> bool:
    return column in {c.name for c in store.db["images"].columns}


def people_work(store: Store) -> tuple[int, int]:
    """(tasks pushed, labels that are not ground truth): what a re-split would move."""
    return store.db["tasks"].count, store.db["labels"].count_where("source != 'truth'")


def images_in(store: Store, splits, column: str) -> list[dict]:
    """id, root, path, split and ``column`` (as ``grp``) of the images in ``splits``."""
    splits = list(splits)
    marks = ", ".join("?" for _ in splits)
    rows = store.db.query(
        f'SELECT id, root, path, split, "{column}" AS grp FROM images '
        f"WHERE split IN ({marks}) ORDER BY id",
        splits,
    )
    return list(rows)


def has_split(store: Store) -> bool:
    """Whether the study's images were ever split."""
    return bool(store.db["splits"].count)
