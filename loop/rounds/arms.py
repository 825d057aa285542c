"""Arms of the loop: each a selection policy with its own labeled set.

An arm is a selection policy with its own labeled set (table ``arm_images``): ``main`` uses
the study's strategy; a control arm such as ``random`` runs beside it in the same study, on
the same test split, from the same initial labels. Labels belong to images, not arms: an
image both arms chose is annotated once, and each arm trains on the images it chose. Round
``r`` trains on the arm's initial images and the batches of rounds ``< r`` that reached a
consensus; a batch image sent to adjudication joins when its label exists.
"""

from __future__ import annotations

import json

from loop import learn
from loop.errors import RoundError
from loop.store import utcnow
from loop.study import Study


def arm_images(study: Study, arm: str, *, before: int | None = None) -> list[int]:
    """The labeled image ids of an arm (those usable by round ``before``, when given)."""
    sql, params = "SELECT image_id FROM arm_images WHERE arm = ?", [arm]
    if before is not None:
        sql += " AND round <= ?"
        params.append(before)
    return [r[0] for r in study.store.db.execute(sql + " ORDER BY image_id", params)]


def _start_arm(study: Study, arm: str) -> None:
    """Give a new arm its initial labels: those every arm started from, or the study's
    labeled images when it is the first arm."""
    db = study.store.db
    if db.execute("SELECT 1 FROM arm_images WHERE arm = ? LIMIT 1", [arm]).fetchone():
        return
    initial = [r[0] for r in db.execute("SELECT DISTINCT image_id FROM arm_images WHERE round = 0")]
    if not initial:
        initial = [image["id"] for image, _ in learn.training_labels(study)]
    if not initial:
        raise RoundError(
            "no labeled images to start from: `loop split --initial N` labels N images "
            "from ground truth"
        )
    now = utcnow()
    with study.store.atomic() as db:
        db["arm_images"].insert_all(
            [{"arm": arm, "image_id": i, "round": 0, "added_at": now} for i in initial],
            ignore=True,
        )


def _batches(study: Study, arm: str, *, up_to: int | None = None) -> set[int]:
    """The image ids of the arm's batches (of rounds ``<= up_to``, when given)."""
    sql, params = "arm = ? AND batch IS NOT NULL", [arm]
    if up_to is not None:
        sql += " AND round <= ?"
        params.append(up_to)
    out: set[int] = set()
    for row in study.store.db["rounds"].rows_where(sql, params):
        out.update(json.loads(row["batch"]))
    return out


def candidates(study: Study, arm: str) -> list[int]:
    """Pool images of an arm: not test or excluded, not labeled by the arm, not in one of its
    earlier batches (those wait for their labels)."""
    taken = set(arm_images(study, arm)) | _batches(study, arm)
    return [
        im["id"]
        for im in study.store.images("split IN ('pool', 'labeled')")
        if im["id"] not in taken
    ]


def _admit_labeled(study: Study, arm: str, round: int) -> int:
    """Add the arm's batch images that now have a consensus or adjudicated label to its
    labeled set, usable from round ``round + 1``; returns how many join for that round."""
    db = study.store.db
    have = set(arm_images(study, arm))
    batches = _batches(study, arm, up_to=round)
    labeled = {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT image_id FROM labels WHERE source IN ('consensus', 'adjudicated')"
        )
    }
    new = sorted((batches & labeled) - have)
    if new:
        now = utcnow()
        with study.store.atomic():
            db["arm_images"].insert_all(
                [{"arm": arm, "image_id": i, "round": round + 1, "added_at": now} for i in new],
                ignore=True,
            )
    # counted, not the difference: a re-run after a kill gives the same figure
    return db.execute(
        "SELECT count(*) FROM arm_images WHERE arm = ? AND round = ?", [arm, round + 1]
    ).fetchone()[0]
