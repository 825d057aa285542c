"""Queries of the models table (one row per trained model: its file, labels, recipe and
decision) and of their cached evaluations. Functions take a :class:`~loop.store.db.Store`."""

from __future__ import annotations

import json

from loop.store.db import Store


def latest_accepted(store: Store, task: str, arm: str) -> dict | None:
    """The latest accepted model of ``task`` trained for ``arm``, or None."""
    rows = store.db["models"].rows_where(
        "task = ? AND status = 'accepted' AND coalesce(arm, 'main') = ?",
        [task, arm],
        order_by="id desc",
        limit=1,
    )
    return next(iter(rows), None)


def model(store: Store, model_id: int) -> dict | None:
    return next(iter(store.db["models"].rows_where("id = ?", [model_id])), None)


def count(store: Store) -> int:
    return store.db["models"].count


def add(store: Store, row: dict) -> int:
    """Insert a model row; returns its id."""
    with store.atomic() as db:
        return db["models"].insert(row).last_pk


def trained_alike(
    store: Store, kind: str, digest: str, parent_id: int | None, itself: int
) -> dict | None:
    """The latest model of ``kind`` from the labels and recipe ``digest`` with this parent
    (or the model ``itself``)."""
    rows = store.db["models"].rows_where(
        "kind = ? AND label_sha256 = ? AND (coalesce(parent_id, 0) = ? OR id = ?)",
        [kind, digest, parent_id or 0, itself],
        order_by="id desc",
        limit=1,
    )
    return next(iter(rows), None)


def evaluation(store: Store, model_id: int, split: str) -> dict | None:
    """The stored evaluation of a model on a split, if any."""
    rows = store.db["evaluations"].rows_where("model_id = ? AND split = ?", [model_id, split])
    return next(iter(rows), None)


def add_evaluation(store: Store, row: dict) -> None:
    """Store a model's evaluation on a split (replacing one of the same key)."""
    with store.atomic() as db:
        db["evaluations"].insert(row, replace=True)


def steps_of(store: Store, model_ids) -> int:
    """Training steps of these models (``params.steps``), summed."""
    rows = (store.db["models"].get(i) for i in model_ids)
    return sum(json.loads(r["params"] or "{}").get("steps", 0) for r in rows)
