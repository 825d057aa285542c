"""Score the pool by regions (the ``@region`` strategies): each candidate image cut into the
``[regions]`` grid, each region measured by the model (stored per model, image and region
size, so a re-run measures nothing twice), and the batch the best regions across the pool, at
most ``regions.per_image`` of one image (:func:`loop.core.regions.select_regions`).

A region strategy is chosen with ``loop score --strategy flip@region`` (or ``entropy``,
``random``; ``+groups`` before ``@region`` keeps each metadata group's share); the batch is
recorded with its regions (``selections.regions``). Regions are measured in this process.
"""

from __future__ import annotations

import numpy as np

from loop.core.images import read_image
from loop.core.regions import grid, select_regions, typical_regions
from loop.core.selectors import group_quotas
from loop.core.strategies import Strategy
from loop.errors import UnknownStrategy
from loop.learn.engine import ModelRef
from loop.learn.labels import Progress, _noop, group_of, image_path
from loop.models.family import family
from loop.store import dumps, scores
from loop.study import Study


def regions_of(images: list[dict], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(image index of each region, boxes (R, 4)) of the grid of every image."""
    owners, boxes = [], []
    for i, image in enumerate(images):
        cells = grid(image["height"], image["width"], size)
        owners.append(np.full(len(cells), i))
        boxes.append(cells)
    if not boxes:
        return np.zeros(0, int), np.zeros((0, 4), int)
    return np.concatenate(owners), np.concatenate(boxes)


def measure_regions(
    study: Study, row: dict, images: list[dict], *, gpu=None, progress: Progress = _noop
) -> tuple[int, dict[int, dict]]:
    """(images measured now, image id -> stored region measures) for ``images``, with model
    ``row``: the regions of images already measured are read back."""
    size = study.config.regions.size
    stored = scores.region_values_of(study.store, row["id"], size)
    todo = [im for im in images if im["id"] not in stored]
    if todo:
        adapter = family(row["kind"])
        if not hasattr(adapter, "measure_regions"):
            raise UnknownStrategy(f"models of kind {row['kind']!r} do not measure regions")
        model = ModelRef.of(study, row, gpu).load()
        chunk = study.config.score.chunk
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            boxes = [grid(im["height"], im["width"], size) for im in part]
            names, values = adapter.measure_regions(
                model,
                [read_image(image_path(im)) for im in part],
                boxes,
                config=adapter.settings(study.config),
            )
            rows = [
                (im["id"], [[*map(int, b), *map(float, v)] for b, v in zip(cells, vals)])
                for im, cells, vals in zip(part, boxes, values)
            ]
            scores.save_region_values(study.store, row["id"], size, names, rows)
            progress("scoring regions", start + len(part), len(todo))
        stored = scores.region_values_of(study.store, row["id"], size)
    return len(todo), stored


def choose_regions(
    study: Study,
    strategy: Strategy,
    images: list[dict],
    labeled: list[dict],
    k: int,
    *,
    row: dict | None,
    seed: int,
    gpu=None,
    progress: Progress = _noop,
) -> tuple[int, list[dict]]:
    """(images measured now, the chosen regions best first: ``image_id``, ``path``,
    ``score``, ``region`` = [row, col, height, width])."""
    size, per_image = study.config.regions.size, study.config.regions.per_image
    measured, values = 0, None
    if strategy.random:
        owners, boxes = regions_of(images, size)
    else:
        measured, stored = measure_regions(study, row, images, gpu=gpu, progress=progress)
        owners, boxes, values = [], [], []
        for i, image in enumerate(images):
            entry = stored[image["id"]]
            column = 4 + entry["measures"].index(strategy.measure)
            for cell in entry["values"]:
                owners.append(i)
                boxes.append(cell[:4])
                values.append(cell[column])
        owners, boxes, values = np.array(owners, int), np.array(boxes, int), np.array(values)
    groups = quotas = None
    if strategy.groups and study.config.groups:
        of_image = group_of(study, images)
        groups = of_image[owners] if len(owners) else np.zeros(0, str)
        weights = np.ones(len(owners)) if values is None else values
        labeled_groups = group_of(study, labeled) if labeled else ()
        quotas = group_quotas(groups, weights, k, labeled=labeled_groups)
    if strategy.selector == "typiclust":  # coverage: TypiClust on the regions' appearance
        x, centers = region_appearance(images, owners, boxes, labeled, size, progress)
        picks = typical_regions(
            x, owners, k, per_image=per_image, centers=centers, groups=groups, quotas=quotas,
            rng=seed,
        )  # fmt: skip
    else:
        picks = select_regions(
            values, owners, k, per_image=per_image, groups=groups, quotas=quotas, rng=seed
        )
    chosen = [
        {
            "image_id": images[owners[i]]["id"],
            "path": images[owners[i]]["path"],
            "score": None if values is None else float(values[i]),
            "region": [int(v) for v in boxes[i]],
        }
        for i in picks
    ]
    return measured, chosen


def region_appearance(
    images: list[dict],
    owners: np.ndarray,
    boxes: np.ndarray,
    labeled: list[dict],
    size: int,
    progress: Progress = _noop,
) -> tuple[np.ndarray, np.ndarray]:
    """The model-free appearance embedding (:func:`loop.core.features.appearance_embedding`)
    of each candidate region and of every region of the labeled images, standardised together:
    (candidates (R, d), labeled (L, d)). Each image is read once. Every region of a labeled
    image counts as labeled (an image labeled in part counts whole: a simplification)."""
    from loop.core.features import appearance_embedding

    lab_owners, lab_boxes = regions_of(labeled, size)
    every = [(images, owners, boxes), (labeled, lab_owners, lab_boxes)]
    total = len(images) + len(labeled)

    def crops():
        done = 0
        for pictures, of, cells in every:
            for i, image in enumerate(pictures):
                pixels = read_image(image_path(image))
                for r, c, h, w in cells[of == i]:
                    yield pixels[r : r + h, c : c + w]
                done += 1
                progress("region features", done, total)

    x = appearance_embedding(crops())
    order = np.concatenate([np.flatnonzero(owners == i) for i in range(len(images))] or [[]])
    candidates = np.empty((len(boxes), x.shape[1]))
    candidates[order.astype(int)] = x[: len(boxes)]  # crops came image by image
    return candidates, x[len(boxes) :]


def record_regions(study: Study, model_id, name: str, k: int, seed: int, chosen) -> None:
    """Record a batch of regions once (a re-run adds no row)."""
    scores.record_selection(
        study.store,
        {
            "model_id": model_id,
            "strategy": name,
            "k": k,
            "seed": seed,
            "image_ids": dumps(list(dict.fromkeys(c["image_id"] for c in chosen))),
            "scores": dumps([c["score"] for c in chosen]),
            "regions": dumps([[c["image_id"], *c["region"]] for c in chosen]),
        },
    )
