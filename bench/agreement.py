"""Agreement speed: ``loop agree`` over 30 tasks x 3 annotators of ~50 nuclei each.

The 30 DSB2018 images whose object count is nearest 50; each annotator's mask is the ground
truth through a simulated noise profile (careful, average, sloppy), written where a pull writes
them. Timed: the whole ``agree`` (pairwise Hungarian matching, per-annotator agreement with the
others' consensus, fusion, scores against the truth, consensus TIFFs written); baseline in the
same run: reading the 90 annotation masks alone.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from bench.timing import median_time

NAMES = {"alice": "careful", "bob": "average", "carol": "sloppy"}


def bench_agreement(data: Path, repeats: int = 3, n_tasks: int = 30) -> dict:
    import shutil

    import tifffile

    from connectors.simulated import noisy_mask
    from loop.annotate.consensus import agree
    from loop.core.images import read_mask
    from loop.data.ingest import ingest
    from loop.noise import PROFILES
    from loop.store import utcnow
    from loop.study import init_study

    manifest = json.loads((data / "manifest.json").read_text())
    chosen = sorted(manifest, key=lambda r: abs(r["n_labels"] - 50))[:n_tasks]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for sub in ("images", "masks"):
            (tmp / sub).mkdir()
        for row in chosen:
            shutil.copy(data / "images" / f"{row['id']}.png", tmp / "images")
            shutil.copy(data / "masks" / f"{row['id']}.tif", tmp / "masks")
        with init_study(tmp / "study") as study:
            ingest(study, tmp / "images", masks=tmp / "masks")
            db, paths = study.store.db, []
            for image in study.store.images():
                truth = read_mask(study.store.truth(image["id"])["mask_path"])
                task = (
                    db["tasks"]
                    .insert(
                        {
                            "image_id": image["id"],
                            "purpose": "annotate",
                            "tool": "bench",
                            "project": "1",
                            "external_id": str(image["id"]),
                            "overlap": 3,
                            "status": "done",
                            "created_at": utcnow(),
                        }
                    )
                    .last_pk
                )
                for k, (name, profile) in enumerate(NAMES.items()):
                    mask = noisy_mask(
                        truth, PROFILES[profile], np.random.default_rng([image["id"], k])
                    )
                    rel = Path("annotations") / str(task) / f"{name}_v1.tif"
                    (study.path / rel).parent.mkdir(parents=True, exist_ok=True)
                    tifffile.imwrite(study.path / rel, mask.astype(np.uint16))
                    paths.append(study.path / rel)
                    db["annotations"].insert(
                        {
                            "task_id": task,
                            "image_id": image["id"],
                            "annotator": name,
                            "external_id": f"{task}-{k}",
                            "result": "{}",
                            "mask_path": rel.as_posix(),
                            "status": "current",
                            "version": 1,
                        }
                    )

            def run():
                agree(study, against_truth=True, min_agreement=0.0)

            def floor():
                for path in paths:
                    read_mask(path)

            median, times = median_time(run, repeats)
            floor_median, _ = median_time(floor, repeats)
            report = agree(study, against_truth=True, min_agreement=0.0, write=False)
    objects = [r["n_labels"] for r in chosen]
    return {
        "tasks": len(chosen),
        "annotators": len(NAMES),
        "objects_per_image": {"mean": float(np.mean(objects)), "max": int(max(objects))},
        "seconds": median,
        "times": times,
        "tasks_per_s": len(chosen) / median,
        "baseline_read_masks_seconds": floor_median,
        "ratio": median / floor_median,
        "consensus_f1_vs_truth": report.against_truth["consensus"]["f1_50"],
        "annotators_f1_vs_truth": {
            n: v["f1_50"] for n, v in report.against_truth["annotators"].items()
        },
        "agreement_with_others": report.annotators,
    }
