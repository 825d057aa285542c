"""The Cellpose family: Cellpose 3 networks for instance segmentation (the network, inference
and files in :mod:`.cellpose_seg`, our seeded training loop in :mod:`.cellpose_train`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loop.config import ModelConfig, StudyConfig
from loop.errors import ModelError
from loop.models.base import Fitted, Output, Recipe, step_recipe
from loop.models.devices import on_device

GPU_BATCH = 32
"""Crops per training step on a GPU (``model.batch_size`` left at its CPU default)."""


class CellposeFamily:
    """Cellpose 3 networks (:mod:`loop.models.cellpose_seg`): instance segmentation."""

    kind = "cellpose"

    def settings(self, config: StudyConfig) -> ModelConfig:
        return config.model

    def load(self, path: Path, *, sha256: str, gpu: bool | None):
        from loop.models import cellpose_seg as cs

        if not path.is_file():
            raise ModelError(f"the model file {path} is missing: run `loop train` again")
        return cs.load(path, cs.device_of(gpu))

    def predict(self, model, images, *, config, tta: bool = False) -> list[Output]:
        from loop.models import cellpose_seg as cs

        return [
            Output(
                measures=seg.measures,
                embedding=seg.style,
                masks=seg.masks,
                cellprob=seg.cellprob,
                object_errors=seg.object_errors,
            )
            for seg in cs.segment_many(model, images, config=config, tta=tta)
        ]

    def shared(self, model, config: ModelConfig, shape: tuple[int, int] | None = None) -> int:
        """Images of ``shape`` (or of a small size) that :meth:`predict` runs through the
        network together (:func:`loop.models.cellpose_seg.images_per_pass`): those seen
        whole in one pass; an image in tiles fills its passes alone."""
        from loop.models import cellpose_seg as cs

        if shape is None:
            return cs.images_per_pass(config, model.device)
        if cs.padded_side(shape) > max(cs.TILE, config.whole_up_to):
            return 1
        return cs.images_per_pass(config, model.device, shape)

    def measure(self, model, images, *, config) -> list[Output]:
        from loop.models import cellpose_rank

        return [
            Output(measures=seg.measures, embedding=seg.style, cellprob=seg.cellprob)
            for seg in cellpose_rank.fast_measures(model, images, config=config)
        ]

    def measure_regions(self, model, images, boxes, *, config=None):
        """(measure names, per image an array (R_i, m)) of the regions ``boxes`` of each
        image (:func:`loop.models.cellpose_regions.region_measures`)."""
        from loop.models import cellpose_regions as cr

        return cr.REGION_MEASURES, cr.region_measures(model, images, boxes)

    # --- evaluation -----------------------------------------------------------------------
    def score(self, output: Output, truth, *, config) -> dict:
        """AP at 0.5/0.75/0.9, precision, recall, F1, matched IoU and Dice of one image."""
        from loop.core.metrics import segmentation_scores

        return segmentation_scores(truth, output.masks)

    def summarize(self, per_image, groups=None, *, config) -> dict:
        from loop.core.metrics import summarize_segmentation

        return summarize_segmentation(per_image, groups)

    # --- training -------------------------------------------------------------------------
    label_kind = "mask"
    suffix = ".pt"

    def recipe(self, config, *, n_train, seed, steps, parent, extend) -> Recipe:
        return step_recipe(
            config.model,
            config.augment,
            n_train=n_train,
            seed=seed,
            steps=steps,
            parent=parent,
            extend=extend,
        )

    def fit(
        self, images, targets, *, config, recipe, parent_path, gpu, classes=(), progress
    ) -> Fitted:
        from loop.models import cellpose_seg as cs
        from loop.models import cellpose_train as ct

        device = cs.device_of(gpu)
        model, changed = on_device(config.model, device, self.gpu_values(config.model, recipe))
        known = [getattr(t, "known", None) for t in targets]  # PartialMask: known pixels only
        masks = [getattr(t, "mask", t) for t in targets]
        data = ct.prepare(
            images, masks, crop=model.crop, device=device, invert=model.invert, known=known
        )
        images.clear()  # the crops are taken: the whole images need not stay in memory
        targets.clear()
        if recipe.warm:
            net = cs.load(parent_path, device)
        elif model.pretrained:
            net = cs.load(cs.pretrained_path(model.pretrained), device)  # widths: JSON or stock
        else:
            net = cs.build_net(model.nbase, device, seed=recipe.seed)
        net.invert = model.invert  # trained (and saved) with the study's polarity
        result = ct.train(
            net,
            data,
            config=model,
            augment=config.augment,
            steps=recipe.steps,
            rng=np.random.default_rng(recipe.seed),
            progress=lambda s: progress("training", s, recipe.steps),
        )
        return Fitted(net, result.losses, str(device), changed)

    def gpu_values(self, model: ModelConfig, recipe: Recipe) -> dict:
        """The settings that fill a GPU (:func:`loop.models.devices.on_device`): batches of
        :data:`GPU_BATCH` crops, and the stock widths for a network that starts from no file
        (a warm start or pretrained weights keep the widths of their file)."""
        from loop.models.cellpose_net import STOCK_NBASE

        fresh = not recipe.warm and not model.pretrained
        return {"batch_size": GPU_BATCH, **({"nbase": STOCK_NBASE} if fresh else {})}

    def validate(self, model, pairs, *, config) -> tuple[float, list[float]]:
        """Mean AP@0.5 and AP@0.5 per image."""
        from loop.core.metrics import segmentation_scores

        scores = []
        for pixels, mask in pairs:
            (seg,) = self.predict(model, [pixels], config=config.model)
            scores.append(segmentation_scores(mask, seg.masks)["ap50"])
        return float(np.mean(scores)), scores

    def blind(self, model, pairs, *, config) -> bool:
        """True when the network finds no object on any of these images while their labels
        have some (a cold start on few labels can collapse to predicting background)."""
        seen = False
        for pixels, mask in pairs:
            if not np.any(mask):
                continue
            seen = True
            (seg,) = self.predict(model, [pixels], config=config.model)
            if np.any(seg.masks):
                return False
        return seen

    def save(self, fitted: Fitted, path: Path, *, title: str) -> Path:
        """The weights (``path``) and their JSON (:func:`.cellpose_seg.save`), and the loss
        curve beside them (``<stem>-loss.png``)."""
        from loop.core.figures import loss_curve
        from loop.models import cellpose_seg as cs

        path = cs.save(fitted.model, path, nbase=fitted.model.nbase)
        loss_curve(
            fitted.losses,
            path.with_name(path.stem + "-loss.png"),
            title=title,
            xlabel="epoch (one crop per training image)",
            ylabel="loss (flows MSE/2 + cell-probability BCE)",
        )
        return path
