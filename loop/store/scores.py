"""Queries of the pool's scores (per model and image: measures as JSON, the embedding as
float32 bytes) and of the batch choices made from them (``selections``). Functions take a
:class:`~loop.store.db.Store`."""

from __future__ import annotations

import json

import numpy as np

from loop.store.db import Store, dumps, utcnow


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


def measures_of(store: Store, model_id: int) -> dict[int, dict]:
    """Image id -> the measures a model has stored for it."""
    rows = store.db.execute("SELECT image_id, measures FROM scores WHERE model_id = ?", [model_id])
    return {image_id: json.loads(m) for image_id, m in rows.fetchall()}


def scores_of(store: Store, model_id: int) -> dict[int, dict]:
    """Image id -> the model's score row (measures and embedding as stored)."""
    return {r["image_id"]: r for r in store.db["scores"].rows_where("model_id = ?", [model_id])}


def save_scores(store: Store, model_id: int, rows, *, device: str | None = None) -> None:
    """(image id, measures, embedding) rows of one model, measured on ``device``, replacing
    older ones; one transaction (a killed run keeps the chunks written before)."""
    now = utcnow()
    with store.atomic() as db:
        db["scores"].insert_all(
            [
                {
                    "model_id": model_id,
                    "image_id": image_id,
                    "measures": dumps(measures),
                    "embedding": to_blob(embedding),
                    "device": device,
                    "created_at": now,
                }
                for image_id, measures, embedding in rows
            ],
            replace=True,
        )


def update_measures(store: Store, score_id: int, measures: dict) -> None:
    with store.atomic() as db:
        db["scores"].update(score_id, {"measures": dumps(measures)})


def record_selection(store: Store, row: dict) -> None:
    """Record a batch choice once: the same choice made again (a re-run) adds no row."""
    with store.atomic() as db:
        same = db.execute(
            "SELECT 1 FROM selections WHERE coalesce(model_id, 0) = ? AND strategy = ? AND k = ? "
            "AND seed = ? AND image_ids = ? AND scores = ? AND coalesce(regions, '') = ?",
            [
                row["model_id"] or 0,
                row["strategy"],
                row["k"],
                row["seed"],
                row["image_ids"],
                row["scores"],
                row.get("regions") or "",
            ],
        ).fetchone()
        if same is None:
            db["selections"].insert({**row, "created_at": utcnow()})


def choices(store: Store) -> dict[int, dict]:
    """Image id -> the latest selection that chose it: its strategy, the image's rank in the
    batch (1 = first) and its score (None for random or coverage picks). One read."""
    out: dict[int, dict] = {}
    for strategy, image_ids, values in store.db.execute(
        "SELECT strategy, image_ids, scores FROM selections ORDER BY id"
    ).fetchall():
        for rank, (image_id, value) in enumerate(zip(json.loads(image_ids), json.loads(values))):
            out[image_id] = {"strategy": strategy, "rank": rank + 1, "score": value}
    return out


def region_values_of(store: Store, model_id: int, size: int) -> dict[int, dict]:
    """Image id -> ``{"measures": [names], "values": rows}`` of a model's region measures
    (regions of ``size``): each row ``row, col, height, width`` then the measures."""
    rows = store.db["region_scores"].rows_where("model_id = ? AND size = ?", [model_id, size])
    return {
        r["image_id"]: {"measures": json.loads(r["measures"]), "values": json.loads(r["values"])}
        for r in rows
    }


def save_region_values(store: Store, model_id: int, size: int, names, rows) -> None:
    """Store ``(image_id, values)`` rows of region measures in one transaction."""
    with store.atomic() as db:
        db["region_scores"].insert_all(
            (
                {
                    "model_id": model_id,
                    "image_id": image_id,
                    "size": size,
                    "measures": dumps(list(names)),
                    "values": dumps(values),
                }
                for image_id, values in rows
            ),
            replace=True,
        )
