"""Export of box labels (detection): ``boxes.csv`` (one row per box) and ``coco.json`` (COCO's
detection format: images, categories, annotations with ``bbox`` as x, y, width, height), the
formats detection tools read."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from loop.core.files import atomic_path
from loop.study import Study
from loop.tasks import box_classes


def write_boxes(study: Study, folder: Path, labels: dict[int, dict]) -> tuple[Path, Path, dict]:
    """Write the boxes of ``labels`` (image id -> label row) to ``folder``; returns the paths
    of ``boxes.csv`` and ``coco.json`` and the number of boxes of each image."""
    from loop.learn.labels import boxes_of

    classes = box_classes(study.config)
    rows, images, annotations, counts = [], [], [], {}
    for image_id, label in sorted(labels.items()):
        image = study.store.image(image_id)
        boxes, index = boxes_of(study, image, label, partial=False)
        counts[image_id] = len(boxes)
        images.append(
            {
                "id": image_id,
                "file_name": image["path"],
                "height": image["height"],
                "width": image["width"],
            }
        )
        for (x1, y1, x2, y2), k in zip(boxes.tolist(), index.tolist(), strict=True):
            rows.append([image_id, image["path"], classes[k], x1, y1, x2, y2, label["source"]])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": k + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    table = folder / "boxes.csv"
    with atomic_path(table) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "image", "class", "x1", "y1", "x2", "y2", "source"])
        writer.writerows(rows)
    coco = folder / "coco.json"
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(classes)]
    data = {"images": images, "categories": categories, "annotations": annotations}
    with atomic_path(coco) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")
    return table, coco, counts
