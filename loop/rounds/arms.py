"""Arms of the loop: each a selection policy with its own labeled set.

An arm is a selection policy with its own labeled set (table ``arm_images``): ``main`` uses
the study's strategy; a control arm such as ``random`` runs beside it in the same study, on
the same test split, from the same initial labels. Labels belong to images, not arms: an
image both arms chose is annotated once, and each arm trains on the images it chose. Round
``r`` trains on the arm's initial images and the batches of rounds ``< r`` that reached a
consensus; a batch image sent to adjudication joins when its label exists.
"""

from __future__ import annotations

from loop import learn
from loop.errors import RoundError
from loop.store import rounds
from loop.store.labels import people_labeled
from loop.study import Study


def arm_images(study: Study, arm: str, *, before: int | None = None) -> list[int]:
    """The labeled image ids of an arm (those usable by round ``before``, when given)."""
    return rounds.arm_images(study.store, arm, before=before)


def _start_arm(study: Study, arm: str) -> None:
    """Give a new arm its initial labels: those every arm started from, or the study's
    labeled images when it is the first arm."""
    if rounds.has_arm(study.store, arm):
        return
    initial = rounds.initial_images(study.store)
    if not initial:
        initial = [image["id"] for image, _ in learn.training_labels(study)]
    if not initial:
        raise RoundError(
            "no labeled images to start from: `loop split --initial N` labels N images "
            "from ground truth"
        )
    rounds.add_arm_images(study.store, arm, initial, usable_from=0)


def candidates(study: Study, arm: str) -> list[int]:
    """Pool images of an arm: not test or excluded, not labeled by the arm, not in one of its
    earlier batches (those wait for their labels)."""
    taken = set(arm_images(study, arm)) | rounds.batches(study.store, arm)
    return [
        im["id"]
        for im in study.store.images("split IN ('pool', 'labeled')")
        if im["id"] not in taken
    ]


def _admit_labeled(study: Study, arm: str, round: int) -> int:
    """Add the arm's batch images that now have a consensus or adjudicated label to its
    labeled set, usable from round ``round + 1``; returns how many join for that round."""
    have = set(arm_images(study, arm))
    batch = rounds.batches(study.store, arm, up_to=round)
    new = sorted((batch & people_labeled(study.store)) - have)
    return rounds.add_arm_images(study.store, arm, new, usable_from=round + 1)
