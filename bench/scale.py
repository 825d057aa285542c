"""Scale-out (the ``scale`` section of ``make bench``): ``loop measure`` in one process, on a
local Dask cluster of 1 and of 2 worker processes, over the same DSB fluorescence images, with
the same trained model; images/s and the ratios, measured in one run. Peak memory of the driver
and of the workers for a folder and for one ``--factor`` times larger (the same images under
other names). And the rows per second that the driver alone writes: score rows into SQLite
(one transaction per chunk, as ``loop score``) and objects.csv rows. And the orchestration's
own ceiling: the per-image compute replaced by a 0.5 s stand-in, on 1 to 32 local workers
(``standin``: images/s by worker count, ratio to one worker; the targets are >= 7x at 8 and
>= 25x at 32). Each measure run carries its ``profile`` (seconds per stage, as ``loop measure
--profile``), and ``malloc_trim`` compares one process with and without the malloc setting that
Dask gives its workers (undone by the worker plugin).

    python -m bench.scale OUT.json [--data DSB] [--images 40] [--factor 4] [--steps 150]
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "scale"
TOML = """\
task = "segmentation"
[model]
val_fraction = 0.0
retry_blind = false
"""


def _link(sources: list[Path], folder: Path, copies: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for c in range(copies):
        for path in sources:
            target = folder / f"c{c}_{path.name}"
            if not target.exists():
                try:
                    os.link(path, target)
                except OSError:
                    target.write_bytes(path.read_bytes())
    return folder


def _study(data: Path, work: Path, steps: int):
    """A study whose model is trained on 24 DSB fluorescence images (their ground truth)."""
    from loop.data.ingest import ingest
    from loop.data.split import split_study
    from loop.learn.train import train
    from loop.study import init_study, open_study

    folder = work / "study"
    if not (folder / "loop.db").is_file():
        init_study(folder).close()
        (folder / "loop.toml").write_text(TOML)
    study = open_study(folder)
    if not study.store.images():
        ingest(study, data / "images", masks=data / "masks", metadata=data / "manifest.json")
        split_study(study, test=0, initial=24, seed=0, where=["modality=fluorescence"])
    train(study, steps=steps)
    return study


def _warm_up(_):
    """A task that imports what measuring needs (torch, Cellpose) in its worker."""
    import loop.models.cellpose_seg  # noqa: F401

    return 0


class PeakRSS:
    """Peak resident memory of this process and, separately, of its child processes (the
    workers), sampled every 0.2 s while in the ``with`` block."""

    def __enter__(self):
        import psutil

        self.me = psutil.Process()
        self.driver = self.workers = 0
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        import psutil

        while self.running:
            try:
                self.driver = max(self.driver, self.me.memory_info().rss)
                children = self.me.children(recursive=True)
                self.workers = max(
                    [self.workers] + [c.memory_info().rss for c in children if c.is_running()]
                )
            except psutil.Error:
                pass
            time.sleep(0.2)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


def bench_scale(data: Path, *, images: int = 40, factor: int = 4, steps: int = 150) -> dict:
    from loop.data.find import find_images
    from loop.learn.engine import Engine, run_each, started
    from loop.learn.measure import measure_folder

    work = WORK
    study = _study(data, work, steps)
    fluorescence = [
        Path(r["root"]) / r["path"]
        for r in study.store.images("split = 'pool' AND meta_modality = 'fluorescence'")
    ][:images]
    small = _link(fluorescence, work / f"folder-{images}")
    large = _link(fluorescence, work / f"folder-{images}x{factor}", copies=factor)
    n_small, n_large = len(find_images(small, (".png",))), len(find_images(large, (".png",)))
    runs = {}
    for name, engine in (
        ("process", Engine()),
        ("workers_1", Engine(workers=1, cluster=True)),  # one worker process, not this one
        ("workers_2", Engine(workers=2)),
    ):
        with PeakRSS() as rss, ExitStack() as stack:
            began = time.perf_counter()  # what a command pays before its first image
            stack.enter_context(started(engine))  # measure_folder runs on this cluster
            list(run_each(_warm_up, [0] * max(1, engine.workers), engine=engine))
            startup = time.perf_counter() - began
            report = measure_folder(study, small, work / "out" / name, engine=engine)
            seconds = time.perf_counter() - began  # the cluster's start included
        runs[name] = {
            "images": n_small,
            "objects": report.n_objects,
            "seconds": round(seconds, 2),
            "startup_seconds": round(startup, 2),
            "images_per_s": round(n_small / seconds, 3),
            "images_per_s_after_startup": round(n_small / max(seconds - startup, 1e-9), 3),
            "peak_rss_driver_mb": round(rss.driver / 2**20),
            "peak_rss_worker_mb": round(rss.workers / 2**20) if rss.workers else None,
            "profile": rounded(report.profile),
        }
        print(f"scale: {name} {runs[name]}", file=sys.stderr)
    with PeakRSS() as rss:
        began = time.perf_counter()
        measure_folder(study, large, work / "out" / "large", engine=Engine(workers=2))
        seconds = time.perf_counter() - began
    larger = {
        "images": n_large,
        "seconds": round(seconds, 2),
        "images_per_s": round(n_large / seconds, 3),
        "peak_rss_driver_mb": round(rss.driver / 2**20),
        "peak_rss_worker_mb": round(rss.workers / 2**20),
    }
    writer = writer_rates(study, work)
    batch = batch_sweep(study, small)
    print(f"scale: forward batch {batch}", file=sys.stderr)
    study.close()
    malloc = malloc_trim_ab(work / "study", small, work / "out" / "malloc")
    print(f"scale: malloc trim {malloc}", file=sys.stderr)
    compiled = import_cache_ab(work / "numba-cache")
    print(f"scale: import with numba's cache {compiled}", file=sys.stderr)
    base = runs["process"]["images_per_s"]
    return {
        "measure": runs,
        "ratio_2_vs_1_workers": round(
            runs["workers_2"]["images_per_s"] / runs["workers_1"]["images_per_s"], 3
        ),
        "ratio_2_vs_1_workers_after_startup": round(
            runs["workers_2"]["images_per_s_after_startup"]
            / runs["workers_1"]["images_per_s_after_startup"],
            3,
        ),
        "ratio_2_workers_vs_process": round(runs["workers_2"]["images_per_s"] / base, 3),
        "larger_folder_2_workers": larger,
        "writer": writer,
        "malloc_trim": malloc,
        "forward_batch": batch,
        "import_cache": compiled,
    }


def import_cache_ab(cache: Path, runs: int = 2) -> dict:
    """Seconds to import the segmentation model (``loop.models.cellpose_seg``: torch,
    Cellpose, its numba functions) in a fresh process: with an empty numba cache (``cold``:
    the compilation every process paid before :mod:`loop.models.cellpose_numba`) and with the
    cache the first process wrote (``warm``: every later command and worker); best of
    ``runs``."""
    import shutil
    import subprocess

    def once(env) -> float:
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import loop.models.cellpose_seg"], env=env, check=True, cwd=REPO
        )
        return time.perf_counter() - began

    cold, warm = [], []
    for _ in range(runs):
        shutil.rmtree(cache, ignore_errors=True)
        env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
        cold.append(once(env))
        warm.append(once(env))
    best_cold, best_warm = min(cold), min(warm)
    return {
        "cold_s": round(best_cold, 2),
        "warm_s": round(best_warm, 2),
        "ratio": round(best_cold / best_warm, 2),
    }


def malloc_trim_ab(study_path: Path, folder: Path, out: Path) -> dict:
    """``loop measure`` of ``folder`` in one process (a process of its own each), with and
    without the ``MALLOC_TRIM_THRESHOLD_=65536`` that Dask's nannies give their workers (the
    worker plugin undoes it, :func:`loop.learn.dask_plugin.undo_malloc_trim`): seconds and the
    network's seconds per image, and their ratios."""
    import shutil
    import subprocess

    runs = {}
    for name, extra in (("glibc_default", {}), ("dask_trim", {"MALLOC_TRIM_THRESHOLD_": "65536"})):
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
        shutil.rmtree(out / name, ignore_errors=True)
        command = ["measure", str(study_path), str(folder), "-o", str(out / name)]
        done = subprocess.run(  # `loop measure` in one process
            [sys.executable, "-m", "loop.cli", *command, "--workers", "1", "--json", "--profile"],
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        profile = json.loads(done.stdout)["profile"]
        runs[name] = {
            "seconds": round(profile["seconds"], 2),
            "network_s_per_image": round(profile["workers"]["network"] / profile["images"], 4),
        }
    slow, fast = runs["dask_trim"], runs["glibc_default"]
    return {
        **runs,
        "ratio_seconds": round(slow["seconds"] / fast["seconds"], 2),
        "ratio_network": round(slow["network_s_per_image"] / fast["network_s_per_image"], 2),
    }


def batch_sweep(study, folder: Path, batches=(1, 2, 4, 8, 16), n: int = 16) -> dict:
    """Seconds per image of the network alone on ``n`` images of 256 px of ``folder``, by
    inputs per forward pass: whole images (``cellpose_seg.forward``, the pool's ranking),
    224 px tiles (Cellpose's ``core.run_net``, segmentation with ``whole_up_to = 0``) and
    whole images sharing ``core.run_net``'s passes (``shared``: segmentation by default, as
    ``model.images_per_pass`` shares them); the best of two runs each. The CPU defaults of
    :func:`loop.models.devices.inference_batch` and of ``images_per_pass`` come from it."""
    import numpy as np
    import torch

    from bench.timing import median_time
    from loop.core.images import read_image
    from loop.learn.registry import current_model
    from loop.models import cellpose_rank as rank
    from loop.models import cellpose_seg as cs
    from loop.models.cellpose_numba import core

    net = cs.load(study.resolve(current_model(study)["path"]), torch.device("cpu"))
    inputs = [cs.to_input(read_image(p), invert=cs.polarity(net)) for p in sorted(folder.iterdir())]
    inputs = [x for x in inputs if x.shape == (2, 256, 256)][:n]

    def best(fn) -> float:
        return round(min(median_time(fn, 2)[1]) / len(inputs), 4)

    whole, tiles, shared, saved = {}, {}, {}, rank.BATCH_PIXELS
    per_pass = cs.inference_batch(torch.device("cpu"), whole=True)
    side = cs.tile_side((256, 256), study.config.model.whole_up_to)
    try:
        for b in batches:
            rank.BATCH_PIXELS = 256 * 256 * b // per_pass
            whole[str(b)] = best(lambda: rank.forward(net, inputs))
            tiles[str(b)] = best(
                lambda b=b: [
                    core.run_net(net, x.transpose(1, 2, 0)[None], batch_size=b, bsize=224)
                    for x in inputs
                ]  # fmt: skip
            )
            stacks = [
                np.stack([x.transpose(1, 2, 0) for x in inputs[i : i + b]])
                for i in range(0, len(inputs), b)
            ]
            shared[str(b)] = best(
                lambda stacks=stacks, b=b: [
                    core.run_net(net, stack, batch_size=b, bsize=side) for stack in stacks
                ]
            )
    finally:
        rank.BATCH_PIXELS = saved
    return {
        "images": len(inputs),
        "threads": torch.get_num_threads(),
        "whole_s_per_image": whole,
        "tiles_s_per_image": tiles,
        "shared_s_per_image": shared,
    }


def rounded(profile: dict) -> dict:
    """A measure profile with its seconds to the millisecond."""
    return {
        k: {s: round(v, 3) for s, v in value.items()}
        if k in ("driver", "workers")
        else (round(value, 3) if isinstance(value, float) else value)
        for k, value in profile.items()
    }


def standin(seconds: float) -> float:
    """The per-image compute replaced by a calibrated stand-in: a sleep (it leaves the cores
    to the driver and the scheduler, so that their own ceiling is what is measured)."""
    time.sleep(seconds)
    return seconds


def standin_sweep(
    workers=(1, 2, 4, 8, 16, 32), *, seconds: float = 0.5, per_worker: int = 8
) -> dict:
    """``run_each`` of ``per_worker`` stand-in images per worker (each ``seconds`` long) on a
    local cluster of each size, started and warmed up first (its start is timed apart):
    images/s by worker count and the ratio to one worker. A serial step in the driver (or a
    per-task cost that swamps the work) shows as a ratio well under the worker count."""
    from loop.learn.engine import Engine, run_each, started

    rates, startup = {}, {}
    for n in workers:
        engine = Engine(workers=n, cluster=True)
        began = time.perf_counter()
        with started(engine) as client:
            list(run_each(standin, [0.0] * n, engine=engine, client=client))  # warm
            startup[str(n)] = round(time.perf_counter() - began, 1)
            items = [seconds] * (per_worker * n)
            began = time.perf_counter()
            for _ in run_each(standin, items, engine=engine, client=client):
                pass
            rates[str(n)] = round(len(items) / (time.perf_counter() - began), 2)
    one = rates.get("1")
    return {
        "seconds_per_image": seconds,
        "images_per_worker": per_worker,
        "images_per_s": rates,
        "ratio": {k: round(v / one, 2) for k, v in rates.items() if k != "1"} if one else {},
        "startup_seconds": startup,
        "ideal_images_per_s": {k: round(int(k) / seconds, 2) for k in rates},
    }


def writer_rates(study, work: Path, n: int = 20000, chunk: int = 32) -> dict:
    """Rows per second written by the driver alone: score rows into the study's SQLite store
    (``loop score``'s own writer, one transaction per chunk; the bench study's images, rows
    replaced in turn) and objects.csv rows (csv.DictWriter, 30 columns)."""
    import csv

    import numpy as np

    from loop.learn.registry import current_model
    from loop.store.scores import save_scores

    model_id = current_model(study, "main")["id"]
    ids = [im["id"] for im in study.store.images()]
    measures = {"flow_error": 0.12, "cellprob": 0.4, "n_objects": 31}
    embedding = np.zeros(64, np.float32)
    began = time.perf_counter()
    for start in range(0, n, chunk):
        rows = [(ids[i % len(ids)], measures, embedding) for i in range(start, start + chunk)]
        save_scores(study.store, model_id, rows)
    score_rate = n / (time.perf_counter() - began)
    row = {f"c{i}": 1.2345 for i in range(30)}
    began = time.perf_counter()
    with open(work / "objects-writer.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        writer.writeheader()
        for _ in range(n):
            writer.writerow(row)
    csv_rate = n / (time.perf_counter() - began)
    return {
        "score_rows_per_s": round(score_rate),
        "objects_csv_rows_per_s": round(csv_rate),
        "rows": n,
        "chunk": chunk,
    }


def main(argv=None) -> None:
    import argparse

    from bench.timing import environment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    shared = Path(os.environ.get("LOOP_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=shared / "dsb2018_train")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args(argv)
    result = bench_scale(args.data, images=args.images, factor=args.factor, steps=args.steps)
    result["standin"] = standin_sweep()
    result["environment"] = environment()
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("ratio_2_vs_1_workers", "writer")}))


if __name__ == "__main__":
    main()
