"""What trains: the labels of labeled images, best first, and the validation split.

Which label trains an image: ``adjudicated`` over ``consensus`` over ``truth``; only images
in the ``labeled`` split train (ground truth of pool images is never read here, and test
images never train or validate). A fixed part of the labeled images (chosen by a hash of
their content, so an image stays on the same side across rounds) validates each new model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from loop.core.images import read_mask
from loop.core.regions import restrict, restrict_pixels
from loop.store import dumps, meta_column
from loop.store.labels import labels_of
from loop.store.regions import task_regions
from loop.study import Study
from loop.tasks import pixel_classes
from loop.tasks.semantic import read_truth
from loop.types import PartialMask

Progress = Callable[[str, int, int], None]


LABEL_PRIORITY = ("adjudicated", "consensus", "truth")


def _noop(stage: str, done: int, total: int) -> None:
    return None


def training_labels(study: Study, image_ids=None, regions=None) -> list[tuple[dict, dict]]:
    """(image, label) of every ``labeled`` image (of those in ``image_ids`` when given), best
    label first by :data:`LABEL_PRIORITY`.

    Labeled images without any usable label are left out. ``regions`` (image id -> boxes,
    :func:`loop.store.rounds.arm_regions`) cuts the mask label of each of those images down
    to the regions an arm chose (:func:`arm_view`): what other arms annotated there, regions
    or the whole image, does not train it.
    """
    rank = {source: i for i, source in enumerate(LABEL_PRIORITY)}
    wanted = None if image_ids is None else set(image_ids)
    out = []
    for image in study.store.images("split = 'labeled'"):
        if wanted is not None and image["id"] not in wanted:
            continue
        labels = [row for row in labels_of(study.store, image["id"]) if row["source"] in rank]
        if labels:
            label = min(labels, key=lambda r: rank[r["source"]])
            if regions and image["id"] in regions and label.get("kind") == "mask":
                label = arm_view(study, image, label, regions[image["id"]])
            out.append((image, label))
    return out


def arm_view(study: Study, image: dict, label: dict, boxes) -> dict:
    """A label as an arm that chose only ``boxes`` of the image knows it: a partial label
    itself when every region merged into it is one of them, else (a partial label with other
    arms' regions, or a whole label another arm paid for) a copy that names the boxes
    (``known_regions``, which :func:`target_of` applies) with its known share and objects
    counted again."""
    mine = [list(map(int, b)) for b in boxes]
    if is_partial(label):
        tasks = json.loads(label.get("provenance") or "{}").get("regions", [])
        if all(list(map(int, b)) in mine for b in task_regions(study.store, tasks)):
            return label
    cut = restrict_pixels if _classmaps(study) else restrict
    mask, known = cut(*_partial(study, image, label), mine)
    return {
        **label,
        "known_regions": mine,
        "known_fraction": float(known.mean()),
        "n_objects": len(np.unique(mask[mask > 0])),
    }


def _classmaps(study: Study) -> bool:
    """Whether the study's labels are class maps (semantic), not instance label images."""
    return bool(pixel_classes(study.config))


def is_validation(sha256: str, fraction: float) -> bool:
    """Whether an image with content hash ``sha256`` validates (stable across rounds).

    >>> is_validation("ab" * 32, 0.0), is_validation("ab" * 32, 1.0)
    (False, True)
    """
    return _validation_key(sha256) < fraction


def _validation_key(sha256: str) -> float:
    digest = hashlib.sha256(("validation:" + sha256).encode()).hexdigest()
    return int(digest[:8], 16) / 0x100000000


def is_partial(label: dict) -> bool:
    """Whether a label is known in part only (:class:`loop.types.PartialMask`): a partial
    label, or an arm's view of part of one (``known_regions``)."""
    return bool(label.get("known_path") or label.get("known_regions"))


def training_area(items: list[tuple[dict, dict]]) -> float:
    """The labeled area of ``items`` in images: 1 per whole label, the known share of a partial
    one (the step budget follows it, not the image count)."""
    return float(sum(label.get("known_fraction") or 1.0 for _, label in items))


def validation_split(items: list, fraction: float) -> tuple[list, list]:
    """(train, validation) items; no validation under 10 labeled images, at least 2 above.
    Only whole labels validate (a partial one cannot score a prediction of the whole image)."""
    if fraction <= 0 or len(items) < 10:
        return list(items), []
    whole = [it for it in items if not is_partial(it[1])]
    val = [it for it in whole if is_validation(it[0]["sha256"], fraction)]
    if len(val) < 2:
        val = sorted(whole, key=lambda it: _validation_key(it[0]["sha256"]))[:2]
    val_ids = {it[0]["id"] for it in val}
    return [it for it in items if it[0]["id"] not in val_ids], val


def _label_digest(items: list[tuple[dict, dict]], recipe: dict) -> str:
    """Digest of the training labels and the recipe (config, seed, options) that trains on
    them: equal digests give equal models."""
    h = hashlib.sha256(dumps(recipe).encode())
    for image, label in sorted(items, key=lambda it: it[0]["id"]):
        known = f":{label['known_path']}" if is_partial(label) else ""
        if label.get("known_regions"):
            known += f":{label['known_regions']}"
        h.update(
            f"{image['id']}:{image['sha256']}:{label['source']}:{label.get('mask_sha256')}:"
            f"{label.get('class')}:{label.get('version')}{known}\n".encode()
        )
    return h.hexdigest()


def _mask_of(study: Study, image: dict, label: dict) -> np.ndarray:
    return read_mask(study.resolve(label["mask_path"]), (image["height"], image["width"]))


def target_of(study: Study, image: dict, label: dict) -> np.ndarray | PartialMask:
    """What a mask label trains with: its label image, or a :class:`PartialMask` when only
    part of it is known."""
    if not is_partial(label):
        return _mask_of(study, image, label)
    mask, known = _partial(study, image, label)
    if label.get("known_regions"):
        cut = restrict_pixels if _classmaps(study) else restrict
        mask, known = cut(mask, known, label["known_regions"])
    return PartialMask(mask, known)


def classmap_of(study: Study, image: dict, label: dict) -> np.ndarray | PartialMask:
    """What a class-map label (semantic segmentation) trains and is judged with: its class
    indices, a :class:`PartialMask` where only part is known (a region label, or ground truth
    with ``[labels] ignore`` pixels). Ground truth is read as ``[labels]`` says (class
    indices, 0/255, or instance masks); the loop's own labels are class indices already."""
    if label["source"] != "truth":
        return target_of(study, image, label)
    index, known = read_truth(_mask_of(study, image, label), study.config.labels)
    return index if known.all() else PartialMask(index, known)


def boxes_of(study: Study, image: dict, label: dict, *, partial: bool = True) -> tuple:
    """What a box label (detection) trains and is judged with: ``(boxes, classes)``, arrays
    of shape (B, 4) and (B,), plus the known pixels (a boolean image) when only part of the
    image is known and ``partial`` asks for them. A box file (``.json``, :mod:`loop.store.boxes`)
    names each box's class; instance masks given as ground truth become one box per object,
    of the first class (``[labels] object``). A study of points (``[detection] shape``) reads
    every box as its centre (a box of zero size)."""
    from loop.core.boxes import from_instances
    from loop.store.boxes import read_boxes_file
    from loop.tasks.detection import object_classes

    path = study.resolve(label["mask_path"])
    if path.suffix == ".json":
        boxes, classes = read_boxes_file(path, object_classes(study.config.labels))
    else:
        boxes, _ = from_instances(_mask_of(study, image, label))
        classes = np.zeros(len(boxes), np.int64)
    if study.config.detection.shape == "point":
        boxes = np.tile((boxes[:, :2] + boxes[:, 2:]) / 2, 2)
    if partial and label.get("known_path"):
        shape = (image["height"], image["width"])
        return boxes, classes, read_mask(study.resolve(label["known_path"]), shape) > 0
    return boxes, classes


def target(study: Study, image: dict, label: dict, kind: str, *, partial: bool = True):
    """What ``label`` trains a family of label kind ``kind`` with (:data:`TARGETS`): a class,
    a label image or a class map; a :class:`PartialMask` where only part is known, unless
    ``partial`` is false (a mask label read whole, as validation and evaluation want)."""
    return TARGETS[kind](study, image, label, partial)


TARGETS = {
    "class": lambda study, image, label, partial: label["class"],
    "mask": lambda study, image, label, partial: (
        target_of(study, image, label) if partial else _mask_of(study, image, label)
    ),
    "classmap": lambda study, image, label, partial: classmap_of(study, image, label),
    "boxes": lambda study, image, label, partial: boxes_of(study, image, label, partial=partial),
}
"""How a label is read, by the label kind of the family it trains (``ModelFamily.label_kind``)."""


def _partial(study: Study, image: dict, label: dict) -> tuple[np.ndarray, np.ndarray]:
    """(label image, known pixels) of a label; a whole label is known everywhere."""
    mask = _mask_of(study, image, label)
    if not label.get("known_path"):
        return mask, np.ones(mask.shape, bool)
    return mask, read_mask(study.resolve(label["known_path"]), mask.shape) > 0


def image_path(image: dict) -> Path:
    return Path(image["root"]) / image["path"]


def group_of(study: Study, images: list[dict]) -> np.ndarray:
    """The first configured metadata group of each image (``key=value``; missing: ``None``)."""
    key = study.config.groups[0]
    return np.array([f"{key}={image.get(meta_column(key))}" for image in images])
