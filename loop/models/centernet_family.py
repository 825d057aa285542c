"""The centre-heatmap detector family (object detection; the network, training and
prediction in :mod:`.centernet`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from loop.config import StudyConfig
from loop.config_detection import DetectionConfig
from loop.models.base import Fitted, Output, Recipe, step_recipe
from loop.tasks.detection import match_radius, object_classes


def _as_label(truth) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(boxes, classes, known or None) of a box label (:data:`loop.learn.labels.TARGETS`)."""
    boxes, classes, *rest = truth
    return boxes, classes, rest[0] if rest else None


REGION_MEASURES = ("entropy", "flip", "ambiguous")
"""Per-region measures of :meth:`CenterNetFamily.measure_regions`, in column order."""


def region_detections(found, regions) -> np.ndarray:
    """The image measures of :func:`loop.models.centernet.detect`, per region: summed over
    the detections whose centres lie in each region.

    Parameters
    ----------
    found : Detected
    regions : array_like of shape (R, 4)
        ``row, col, height, width``.

    Returns
    -------
    ndarray of shape (R, 3): ``entropy``, ``flip``, ``ambiguous``
    """
    regions = np.asarray(regions, np.float64).reshape(-1, 4)
    cx = (found.boxes[:, 0] + found.boxes[:, 2]) / 2
    cy = (found.boxes[:, 1] + found.boxes[:, 3]) / 2
    s = np.clip(found.scores, 1e-6, 1 - 1e-6)
    bits = -(s * np.log2(s) + (1 - s) * np.log2(1 - s))
    near = (np.abs(found.scores - found.threshold) < 0.15).astype(np.float64)
    out = np.zeros((len(regions), 3))
    for i, (r, c, h, w) in enumerate(regions):
        inside = (cy >= r) & (cy < r + h) & (cx >= c) & (cx < c + w)
        out[i] = bits[inside].sum(), found.doubt[inside].sum(), near[inside].sum()
    return out


class CenterNetFamily:
    """Centre-heatmap detectors (:mod:`loop.models.centernet`): boxes with classes."""

    kind = "centernet"

    def settings(self, config: StudyConfig) -> DetectionConfig:
        return config.detection

    def load(self, path: Path, *, sha256: str, gpu: bool | None):
        from loop.models import centernet
        from loop.models.devices import device_of

        return centernet.load(path, device_of(gpu))

    def predict(self, model, images, *, config, tta: bool = False) -> list[Output]:
        from loop.models import centernet

        return [self._output(centernet.detect(model, p, config=config)) for p in images]

    @staticmethod
    def _output(found) -> Output:
        return Output(
            measures={
                **found.measures,
                "n_objects": float(np.sum(found.scores >= found.threshold)),
            },
            embedding=found.embedding,
            boxes=found.boxes,
            box_classes=found.classes,
            box_scores=found.scores,
            object_errors=found.doubt,
            box_threshold=found.threshold,
        )

    def measure_regions(self, model, images, boxes, *, config):
        """(measure names, per image an array (R_i, 3)) of the regions ``boxes`` (``row,
        col, height, width``) of each image: ``entropy``, ``flip`` and ``ambiguous`` of the
        detections whose centres lie in each region (:func:`region_detections`)."""
        from loop.models import centernet

        found = [centernet.detect(model, p, config=config) for p in images]
        return REGION_MEASURES, [region_detections(d, b) for d, b in zip(found, boxes)]

    def shared(self, model, config, shape=None) -> int:
        """One image at a time: :meth:`predict` gains nothing from taking more at once."""
        return 1

    def measure(self, model, images, *, config) -> list[Output]:
        return self.predict(model, images, config=config)  # one pass gives every measure

    # --- evaluation -----------------------------------------------------------------------
    def score(self, output: Output, truth, *, config: StudyConfig) -> dict:
        """Matches at IoU 0.5 per class of one image (:func:`loop.core.boxes.detection_counts`):
        counts from the detections (scoring the model's threshold or more), the ranking for AP
        from all of
        them; as plain lists (stored as JSON)."""
        from loop.core.boxes import counts_at, detection_counts

        boxes, classes, _ = _as_label(truth)
        n = len(object_classes(config.labels))
        radius = match_radius(config)
        every = detection_counts(
            boxes, classes, output.boxes, output.box_classes, output.box_scores, n, radius=radius
        )
        counts = counts_at(every, output.box_threshold)
        row = {k: counts[k].tolist() for k in ("tp", "fp", "fn", "n_true", "n_pred")}
        return {**row, "ranked": [r.tolist() for r in every["ranked"]]}

    def summarize(self, per_image, groups=None, *, config: StudyConfig) -> dict:
        """Precision, recall, F1 and AP at IoU 0.5 per class and overall, count errors
        (:func:`loop.core.boxes.summarize_detection`), overall and per group."""
        from loop.core.boxes import summarize_detection

        classes = object_classes(config.labels)
        rows = [
            {**r, "ranked": [np.asarray(x).reshape(-1, 2) for x in r["ranked"]]} for r in per_image
        ]
        out = summarize_detection(rows, classes)
        by_group: dict[str, list] = {}
        for row, group in zip(rows, groups, strict=True) if groups is not None else ():
            by_group.setdefault(str(group), []).append(row)
        out["per_group"] = {
            g: {k: v for k, v in summarize_detection(r, classes).items() if k != "per_class"}
            for g, r in sorted(by_group.items())
        }
        return out

    # --- training -------------------------------------------------------------------------
    label_kind = "boxes"
    suffix = ".pt"

    def recipe(self, config, *, n_train, seed, steps, parent, extend) -> Recipe:
        return step_recipe(
            config.detection,
            config.augment,
            n_train=n_train,
            seed=seed,
            steps=steps,
            parent=parent,
            extend=extend,
            classes=list(object_classes(config.labels)),
        )

    def fit(
        self, images, targets, *, config, recipe, parent_path, gpu, classes=(), progress
    ) -> Fitted:
        from loop.models import centernet, centernet_train
        from loop.models.devices import device_of

        device = device_of(gpu)
        n_classes = len(object_classes(config.labels))
        examples = centernet_train.prepare(
            images, targets, config=config.detection, n_classes=n_classes
        )
        images.clear()
        targets.clear()
        if recipe.warm:
            net = centernet.load(parent_path, device)
        else:
            net = centernet.build(config.detection, n_classes, seed=recipe.seed, device=device)
        result = centernet_train.train(
            net,
            examples,
            config=config.detection,
            augment=config.augment,
            steps=recipe.steps,
            rng=np.random.default_rng(recipe.seed),
            device=device,
            progress=lambda s: progress("training", s, recipe.steps),
        )
        return Fitted(net, result.losses, str(device))

    def validate(self, model, pairs, *, config) -> tuple[float, list[float]]:
        """F1 at IoU 0.5 of the pooled boxes, and per image. With ``detection.choose_threshold``
        the model's score threshold is first chosen on these images
        (:func:`loop.models.centernet.choose_threshold`) and kept in the model (written
        with it): what a detection is follows what the model learned, not a fixed number."""
        from loop.models import centernet

        pairs = list(pairs)
        if not pairs:
            return 0.0, []
        found = [centernet.detect(model, pixels, config=config.detection) for pixels, _ in pairs]
        if config.detection.choose_threshold:
            truths = [_as_label(truth)[:2] for _, truth in pairs]
            n = len(object_classes(config.labels))
            chosen = centernet.choose_threshold(found, truths, n, radius=match_radius(config))
            if chosen is not None:  # the detections stay; what counts as one changes
                model.meta["threshold"] = chosen
                found = [replace(d, threshold=chosen) for d in found]
        rows = [
            self.score(self._output(d), truth, config=config)
            for d, (_, truth) in zip(found, pairs, strict=True)
        ]
        summary = self.summarize(rows, config=config)["f1"] or 0.0
        per_image = [self.summarize([r], config=config)["f1"] for r in rows]
        return float(summary), [float(f or 0.0) for f in per_image]

    def blind(self, model, pairs, *, config) -> bool:
        """True when the detector finds nothing on images whose labels have boxes: a
        collapsed fit."""
        seen = False
        for pixels, truth in pairs:
            boxes, _, _ = _as_label(truth)
            if not len(boxes):
                continue
            seen = True
            (output,) = self.predict(model, [pixels], config=config.detection)
            if np.any(output.box_scores >= output.box_threshold):
                return False
        return seen

    def save(self, fitted: Fitted, path: Path, *, title: str) -> Path:
        """The model file and its loss curve beside it (``<stem>-loss.png``)."""
        from loop.models import unet

        return unet.save_trained(fitted, path, title=title, ylabel="loss (focal + size L1)")
