"""Queries of the labels that train: one label per image and source (``truth``,
``consensus``, ``adjudicated``), versioned in place. Functions take a
:class:`~loop.store.db.Store`."""

from __future__ import annotations

from loop.store.db import Store, utcnow


def labels_of(store: Store, image_id: int) -> list[dict]:
    """Every label of an image (any source)."""
    return list(store.db["labels"].rows_where("image_id = ?", [image_id]))


def label_of(store: Store, image_id: int, source: str) -> dict | None:
    rows = store.db["labels"].rows_where("image_id = ? AND source = ?", [image_id, source])
    return next(iter(rows), None)


def save_label(store: Store, image_id: int, *, source: str, label: dict, compare=None) -> bool:
    """Write the image's ``source`` label (inserted, or updated with its version + 1 when one
    of ``compare`` (default: every key of ``label``) differs) and move a pool image to
    ``labeled``, in one transaction. A label without ``known_path`` is known everywhere (a
    whole consensus replaces a partial one whole). Returns False when the stored label is
    kept as is."""
    existing = label_of(store, image_id, source)
    # a label that names no known mask is known everywhere: it replaces a partial one whole
    label = {"known_path": None, "known_fraction": None, **label}
    keys = label if compare is None else compare
    changed = existing is None or any(existing[k] != label[k] for k in keys)
    now = utcnow()
    with store.atomic() as db:
        if existing is None:
            db["labels"].insert(
                {
                    "image_id": image_id,
                    "source": source,
                    "annotator": "",
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                    **label,
                }
            )
        elif changed:
            db["labels"].update(
                existing["id"], {**label, "version": existing["version"] + 1, "updated_at": now}
            )
        if store.image(image_id)["split"] == "pool":
            db["images"].update(image_id, {"split": "labeled", "updated_at": now})
    return changed


def made_by_people(store: Store) -> dict[str, int]:
    """Source (consensus, adjudicated) -> labels made from annotations."""
    rows = store.db.execute(
        "SELECT source, count(*) FROM labels WHERE source IN ('consensus', 'adjudicated') "
        "GROUP BY source ORDER BY source"
    )
    return dict(rows.fetchall())


def people_labeled(store: Store) -> set[int]:
    """Images with a consensus or adjudicated label."""
    rows = store.db.execute(
        "SELECT DISTINCT image_id FROM labels WHERE source IN ('consensus', 'adjudicated')"
    )
    return {r[0] for r in rows}


def images_with(store: Store, source: str) -> set[int]:
    """Images that have a label of ``source``."""
    rows = store.db.execute("SELECT image_id FROM labels WHERE source = ?", [source])
    return {r[0] for r in rows}


def truth_classes(store: Store) -> dict[int, str]:
    """Image id -> its ground-truth class (classification studies)."""
    rows = store.db["labels"].rows_where("source = 'truth' and kind = 'class'")
    return {r["image_id"]: r["class"] for r in rows}


def add_truth(store: Store, image_id: int, label: dict, *, now: str) -> None:
    """Insert an image's ground truth (from ingest)."""
    row = {"image_id": image_id, "source": "truth", "annotator": "", "method": "ingest"}
    with store.atomic() as db:
        db["labels"].insert({**row, "version": 1, "created_at": now, "updated_at": now, **label})


def update_label(store: Store, old: dict, label: dict, *, now: str) -> None:
    """Rewrite a label in place, its version + 1."""
    with store.atomic() as db:
        db["labels"].update(old["id"], {**label, "version": old["version"] + 1, "updated_at": now})


def labels_from(store: Store, sources) -> list[dict]:
    """Every label of one of ``sources``."""
    sources = list(sources)
    rows = store.db["labels"].rows_where(f"source IN ({', '.join('?' for _ in sources)})", sources)
    return list(rows)


def truth_only(store: Store) -> None:
    """Make a copy of a study train on ground truth alone: labels made by people removed, every
    pool image with ground truth labeled, and labeled ones without it back in the pool."""
    with store.atomic() as db:
        db.execute("DELETE FROM labels WHERE source IN ('consensus', 'adjudicated')")
        db.execute(
            "UPDATE images SET split = 'labeled' WHERE split = 'pool' AND id IN "
            "(SELECT image_id FROM labels WHERE source = 'truth')"
        )
        db.execute(
            "UPDATE images SET split = 'pool' WHERE split = 'labeled' AND id NOT IN "
            "(SELECT image_id FROM labels WHERE source = 'truth')"
        )
