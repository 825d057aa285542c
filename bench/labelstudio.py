"""Push of 1,000 tasks with pre-annotations and pull of 1,000 annotations against the local
Label Studio, with the breakdown (encode, HTTP, decode) and baselines measured in the same run:
the same push without pre-annotations (HTTP + PNG floor), and the SDK's brush codec on the same
masks (``label_studio_sdk.converter.brush``)."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _make_images(folder: Path, n: int, shape=(256, 256)) -> None:
    import tifffile

    from loop.data.synthetic import synthetic_nuclei

    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        image, mask = synthetic_nuclei(shape, 60, radius=(5.0, 9.0), rng=rng)
        tifffile.imwrite(folder / "images" / f"img{i:04d}.tif", image)
        tifffile.imwrite(folder / "masks" / f"img{i:04d}.tif", mask.astype(np.uint16))


def _codec_baseline(masks: list[np.ndarray]) -> dict:
    from label_studio_sdk.converter.brush import decode_rle as sdk_decode
    from label_studio_sdk.converter.brush import mask2rle

    from connectors.brush_rle import alpha_runs, decode_rle, encode_labels, encode_mask

    objects = [(m == v) for m in masks for v in np.unique(m)[1:]]

    def timed(fn):
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - start)
        return statistics.median(runs) / len(objects) * 1e3

    ours_rle = [encode_mask(o) for o in objects]
    sdk_rle = [mask2rle(o.astype(np.uint8) * 255) for o in objects]
    return {
        "objects": len(objects),
        "encode_ms_per_object": round(timed(lambda: [encode_mask(o) for o in objects]), 4),
        "encode_sdk_ms_per_object": round(
            timed(lambda: [mask2rle(o.astype(np.uint8) * 255) for o in objects]), 4
        ),
        "decode_ms_per_object": round(
            timed(lambda: [decode_rle(r, objects[0].shape) for r in ours_rle]), 4
        ),
        "decode_sdk_ms_per_object": round(timed(lambda: [sdk_decode(r) for r in sdk_rle]), 4),
        # what push and pull run: every object of a label image at once, regions as runs
        "encode_labels_ms_per_object": round(timed(lambda: [encode_labels(m) for m in masks]), 4),
        "alpha_runs_ms_per_object": round(
            timed(lambda: [alpha_runs(r, objects[0].shape) for r in ours_rle]), 4
        ),
    }


def bench_labelstudio(n_tasks: int = 1000) -> dict:
    from connectors.ls_results import mask_to_results
    from loop.annotate.pull import CLOCK_MARGIN, pull
    from loop.annotate.push import PUBLIC_DIR, push, select_for_push
    from loop.cli.wiring import connect, server_of
    from loop.core.images import read_mask
    from loop.data.ingest import ingest
    from loop.study import init_study
    from loop.types import Prediction

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"bench: making {n_tasks} synthetic 256x256 images ...", file=sys.stderr)
        _make_images(tmp / "data", n_tasks)
        with init_study(tmp / "study") as study:
            ingest(study, tmp / "data" / "images", masks=tmp / "data" / "masks")
            server = server_of(study)
            print("bench: starting Label Studio ...", file=sys.stderr)
            start = time.perf_counter()
            server.start(timeout=300)
            started = time.perf_counter() - start
            try:
                images = select_for_push(study, split="pool")
                masks = {
                    im["id"]: read_mask(study.store.truth(im["id"])["mask_path"]) for im in images
                }
                n_objects = float(np.mean([m.max() for m in masks.values()]))

                # baseline: the same push without pre-annotations, into a second study's project
                # (inside the server's local-files root, where storages may be added; its
                # image URLs are not browsable, which does not matter for timing)
                with init_study(study.path / PUBLIC_DIR / "baseline") as plain:
                    ingest(plain, tmp / "data" / "images")
                    tool = connect(study)  # same server, admin token
                    tool.study_root = plain.path.resolve()
                    start = time.perf_counter()
                    push(plain, tool, select_for_push(plain, split="pool"), overlap=1)
                    plain_s = time.perf_counter() - start
                    tool.close()

                tool = connect(study)
                print("bench: push ...", file=sys.stderr)
                start = time.perf_counter()
                report = push(
                    study,
                    tool,
                    images,
                    overlap=1,
                    predictions=lambda im: Prediction(mask=masks[im["id"]], score=0.5),
                )
                push_s = time.perf_counter() - start
                push_breakdown = {k: round(v, 2) for k, v in tool.seconds.items()}
                assert report.created == n_tasks

                print("bench: annotating (setup, not timed) ...", file=sys.stderr)
                tasks = list(study.store.db["tasks"].rows)
                for task in tasks:
                    result = mask_to_results(masks[task["image_id"]], prefix="a")
                    tool._json(
                        "POST",
                        f"/api/tasks/{task['external_id']}/annotations/",
                        what="annotate",
                        json={"result": result, "lead_time": 30.0},
                    )
                tool.seconds.clear()
                # annotators stopped a while ago (not timed): the incremental re-pull below
                # then has nothing newer than the first pull's clock, as between two rounds
                time.sleep(CLOCK_MARGIN.total_seconds() + 2)
                print("bench: pull ...", file=sys.stderr)
                start = time.perf_counter()
                pulled = pull(study, tool)
                pull_s = time.perf_counter() - start
                pull_breakdown = {k: round(v, 2) for k, v in tool.seconds.items()}
                assert pulled.new == n_tasks
                start = time.perf_counter()
                again = pull(study, tool)  # incremental: asks for tasks updated since
                repull_s = time.perf_counter() - start
                assert (again.tasks_seen, again.new, again.full) == (0, 0, False)
                start = time.perf_counter()
                whole = pull(study, tool, full=True)  # the baseline: every task read again
                repull_full_s = time.perf_counter() - start
                assert whole.unchanged == n_tasks
                tool.close()
            finally:
                server.stop()
            codec = _codec_baseline(list(masks.values())[:20])
    return {
        "n_tasks": n_tasks,
        "mean_objects_per_image": round(n_objects, 1),
        "server_start_s": round(started, 1),
        "push_s": round(push_s, 2),
        "push_tasks_per_s": round(n_tasks / push_s, 1),
        "push_breakdown_s": push_breakdown,
        "push_without_predictions_s": round(plain_s, 2),
        "pull_s": round(pull_s, 2),
        "pull_annotations_per_s": round(n_tasks / pull_s, 1),
        "pull_breakdown_s": pull_breakdown,
        "repull_unchanged_s": round(repull_s, 2),
        "repull_full_s": round(repull_full_s, 2),
        "codec": codec,
        "target": "push and pull of 1000 each < 10 s; push with pre-annotations <= 1.5x the "
        "push without; a re-pull with nothing new < 1 s",
        "repeats": 1,
    }
