"""The U-Net family: MONAI's BasicUNet for semantic segmentation (the network, training and
sliding-window prediction in :mod:`.unet`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loop.config import StudyConfig
from loop.config_unet import UNetConfig
from loop.models.base import Fitted, Output, Recipe, step_recipe


class UNetFamily:
    """U-Nets (:mod:`loop.models.unet`): a class for every pixel."""

    kind = "unet"

    def settings(self, config: StudyConfig) -> UNetConfig:
        return config.unet

    def load(self, path: Path, *, sha256: str, gpu: bool | None):
        from loop.models import unet
        from loop.models.devices import device_of

        return unet.load(path, device_of(gpu))

    def predict(self, model, images, *, config, tta: bool = False) -> list[Output]:
        from loop.models import unet

        out = []
        for pixels in images:
            seg = unet.segment(model, pixels, config=config)
            out.append(
                Output(
                    measures=seg.measures,
                    embedding=seg.embedding,
                    classmap=seg.classes,
                    probability=seg.confidence,
                )
            )
        return out

    def shared(self, model, config, shape=None) -> int:
        """One image at a time: :meth:`predict` gains nothing from taking more at once."""
        return 1

    def measure(self, model, images, *, config) -> list[Output]:
        return self.predict(model, images, config=config)  # both passes are the cheap ones

    def measure_regions(self, model, images, boxes, *, config):
        """(measure names, per image an array (R_i, 2)) of the regions ``boxes`` of each image
        (:func:`loop.models.unet.region_measures`)."""
        from loop.models import unet

        return unet.REGION_MEASURES, unet.region_measures(model, images, boxes, config=config)

    # --- evaluation -----------------------------------------------------------------------
    def score(self, output: Output, truth, *, config: StudyConfig) -> dict:
        """Dice and IoU per class of one image (:func:`loop.core.classmaps.class_scores`);
        ``truth`` a class map or a :class:`~loop.types.PartialMask` of one."""
        from loop.core.classmaps import class_scores

        known = getattr(truth, "known", None)
        classes = np.asarray(getattr(truth, "mask", truth))
        return class_scores(classes, output.classmap, config.labels.classes, known)

    def summarize(self, per_image, groups=None, *, config: StudyConfig) -> dict:
        from loop.core.classmaps import summarize_classes

        return summarize_classes(per_image, config.labels.classes, groups)

    # --- training -------------------------------------------------------------------------
    label_kind = "classmap"
    suffix = ".pt"

    def recipe(self, config, *, n_train, seed, steps, parent, extend) -> Recipe:
        return step_recipe(
            config.unet,
            config.augment,
            n_train=n_train,
            seed=seed,
            steps=steps,
            parent=parent,
            extend=extend,
            classes=list(config.labels.classes),
        )

    def fit(
        self, images, targets, *, config, recipe, parent_path, gpu, classes=(), progress
    ) -> Fitted:
        from loop.models import unet
        from loop.models.devices import device_of

        device = device_of(gpu)
        examples = unet.prepare(images, targets, channels=config.unet.channels)
        images.clear()
        targets.clear()
        n_classes = len(config.labels.classes)
        if recipe.warm:
            net = unet.load(parent_path, device)
        else:
            net = unet.build(config.unet, n_classes, seed=recipe.seed, device=device)
        result = unet.train(
            net,
            examples,
            config=config.unet,
            augment=config.augment,
            steps=recipe.steps,
            rng=np.random.default_rng(recipe.seed),
            device=device,
            progress=lambda s: progress("training", s, recipe.steps),
        )
        return Fitted(net, result.losses, str(device))

    def validate(self, model, pairs, *, config) -> tuple[float, list[float]]:
        """Mean foreground Dice of the pooled pixels, and per image."""
        rows = []
        for pixels, truth in pairs:
            (output,) = self.predict(model, [pixels], config=config.unet)
            rows.append(self.score(output, truth, config=config))
        if not rows:
            return 0.0, []
        summary = self.summarize(rows, config=config)["mean_dice"] or 0.0
        return float(summary), [float(r["mean_dice"] or 0.0) for r in rows]

    def blind(self, model, pairs, *, config) -> bool:
        """True when the network paints only the background on images whose labels have
        another class: a collapsed fit."""
        seen = False
        for pixels, truth in pairs:
            classes = np.asarray(getattr(truth, "mask", truth))
            if not np.any(classes):
                continue
            seen = True
            (output,) = self.predict(model, [pixels], config=config.unet)
            if np.any(output.classmap):
                return False
        return seen

    def save(self, fitted: Fitted, path: Path, *, title: str) -> Path:
        """The model file and its loss curve beside it (``<stem>-loss.png``)."""
        from loop.models import unet

        return unet.save_trained(fitted, path, title=title, ylabel="loss (cross-entropy + Dice)")
