"""A partial consensus label: what the region tasks of an image agreed on so far (label
file written by the caller) with its known pixels, and the region tasks it merges named in
its provenance."""

from __future__ import annotations

import json

import numpy as np

from loop.core.images import write_labels
from loop.store import dumps
from loop.store.labels import label_of, save_label

CONSENSUS_DIR = "consensus"


def save_partial_label(study, image, task_id, label, known, rows, method, agreement) -> None:
    """Save the image's partial consensus ``label`` (its kind, file and objects; the label
    file written already) with its known pixels, the region task added to its provenance."""
    store = study.store
    existing = label_of(store, image["id"], "consensus")
    provenance = json.loads(existing["provenance"] or "{}") if existing else {}
    known_rel = f"{CONSENSUS_DIR}/{image['id']}_{image['name']}_known.tif"
    write_labels(study.path / known_rel, known.astype(np.uint8))
    provenance = {
        "method": method,
        "regions": [*provenance.get("regions", []), task_id],
        "annotations": [*provenance.get("annotations", []), *(r["id"] for r in rows)],
        "annotators": sorted({*provenance.get("annotators", []), *(r["annotator"] for r in rows)}),
        "agreement": {**provenance.get("agreement", {}), str(task_id): agreement},
        "round": rows[0]["task_round"],
    }
    save_label(
        store,
        image["id"],
        source="consensus",
        label={
            **label,
            "class": None,
            "object_classes": None,
            "method": method,
            "provenance": dumps(provenance),
            "known_path": known_rel,
            "known_fraction": float(known.mean()),
        },
        compare=("provenance",),
    )
