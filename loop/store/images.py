"""Queries of the images table by split and metadata, beside the :class:`~loop.store.db.Store`
methods for single images. Functions take a :class:`~loop.store.db.Store`."""

from __future__ import annotations

from loop.store.db import META_PREFIX, Store


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
