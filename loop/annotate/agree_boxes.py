"""Agreement and consensus of boxes (detection), for :data:`loop.annotate.consensus.AGREEMENT`.

Per pair of annotators: the F1 of their boxes matched at IoU 0.5 whatever the class, Cohen's
kappa on the classes of the matched boxes, and the F1 of each class (boxes matched within the
class). Each annotator is scored against the consensus of the others; the consensus keeps
the boxes a majority drew (:func:`loop.core.boxes.fuse_boxes`: median corners, majority
class).
"""

from __future__ import annotations

import itertools

import numpy as np

from loop.core.agreement import cohen_kappa
from loop.core.box_fusion import fuse_boxes, pair_agreement
from loop.core.boxes import detection_counts, scores_from_counts
from loop.store.boxes import read_boxes_file
from loop.tasks import box_classes
from loop.tasks.detection import match_radius
from loop.types import Boxes


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _f1(truth: tuple, found: tuple, n_classes: int, radius=None) -> float:
    """F1 at IoU 0.5 (points: within ``radius``) of ``found`` (boxes, classes) against
    ``truth``, classes counted."""
    counts = detection_counts(*truth, *found, np.ones(len(found[0])), n_classes, radius=radius)
    f1 = scores_from_counts(*(int(counts[k].sum()) for k in ("tp", "fp", "fn")))["f1"]
    return 1.0 if f1 is None else f1


def agree_boxes(study, item, image, rows, truth, method) -> Boxes:
    """Boxes: pairwise F1 and kappa, per-class F1, each annotator against the others'
    consensus, the majority consensus (``method`` is not used: boxes fuse one way)."""
    classes = box_classes(study.config)
    k = len(classes)
    radius = match_radius(study.config)
    shape = (image["height"], image["width"])
    drawn = {r["annotator"]: read_boxes_file(study.resolve(r["mask_path"]), classes) for r in rows}
    names = item.annotators
    per_class: dict[str, list] = {}
    for a, b in itertools.combinations(names, 2):
        pair = pair_agreement(*drawn[a], *drawn[b], radius=radius)
        pairs = pair["pairs"]
        kappa = cohen_kappa(pairs[:, 0].tolist(), pairs[:, 1].tolist()) if len(pairs) else None
        item.pairs[f"{a}|{b}"] = {"f1": pair["f1"], "kappa": kappa}
        for c, name in enumerate(classes):
            pick = [(d[0][d[1] == c], d[1][d[1] == c]) for d in (drawn[a], drawn[b])]
            if len(pick[0][0]) + len(pick[1][0]):
                agree = pair_agreement(*pick[0], *pick[1], radius=radius)
                per_class.setdefault(name, []).append(agree["f1"])
    item.agreement = _mean(p["f1"] for p in item.pairs.values())
    item.per_class = {name: _mean(v) for name, v in per_class.items()}
    for name in names if len(names) > 1 else []:
        others = fuse_boxes([drawn[o] for o in names if o != name], radius=radius)[:2]
        item.per_annotator[name] = _f1(others, drawn[name], k, radius)
    boxes, index, _ = fuse_boxes(list(drawn.values()), radius=radius)
    item.consensus = len(boxes)
    if truth is not None and truth["kind"] in ("boxes", "mask"):
        from loop.learn.labels import boxes_of

        t = boxes_of(study, image, truth, partial=False)
        item.against_truth = {
            "consensus": {"f1": _f1(t, (boxes, index), k, radius)},
            "annotators": {n: {"f1": _f1(t, d, k, radius)} for n, d in drawn.items()},
        }
    named = tuple(classes[int(i)] for i in index)
    return Boxes(boxes, named, shape, points=radius is not None)
