"""The prepared GPU bench (issue 31): run it as it is on a machine with one GPU and 16 cores,
in under 8 minutes, with nothing fetched from the network:

    .venv/bin/python -m bench.gpu bench/results/<date>-gpu.json

It writes one JSON with the figures the scale-out targets name, each next to its baseline
measured in the same run:

- ``train``: ``loop train`` on the DSB 256 px fluorescence images, its widths and batch the
  GPU defaults (``model.fill_gpu``: the stock Cellpose widths, 32 crops a step; ``on_device``
  says what was changed) (steps/s; the device);
- ``measure_vs_forward``: the default measure against one batched forward pass (target <= 2x),
  and ``segment`` (masks reconstructed) against it;
- ``score``: ``loop score`` of the pool (images/s; target >= 100 on 256 px images);
- ``measure_gpu``: ``loop measure`` of 120 images on the GPU (images/s; target >= 20), with
  its profile (``loop measure --profile``: seconds per stage), and ``one_image_a_pass``: the
  same with ``model.images_per_pass = 1`` (what sharing the forward passes gains);
  ``measure_gpu_workers``: the same on 4 local workers sharing the GPU (their CPU parts on
  the host's cores), tables compared with one process's (``identical_tables``: byte for
  byte; ``same_objects``: the probabilities to 1e-4, as images sharing other passes give);
- ``score`` carries its profile too;
- ``measure_cpu_workers``: the GPU hidden, ``loop measure`` of 500 images on 1 and 8 local
  workers, cluster start included (target >= 4x), and whether the tables are identical;
- ``standin``: the orchestration alone (``bench.scale.standin_sweep``, 1 to 32 workers).

``--quick`` runs every part at a toy size on whatever device there is (a smoke test of the
script itself, a few minutes on 2 CPU cores); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.scale import rounded

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "gpu"
STOCK = "[2, 32, 64, 128, 256]"
FULL = {
    "steps": 1500,
    "pool": 0,
    "measure": 120,
    "gpu_workers": 4,
    "workers": (1, 8),
    "cpu_images": 500,
}
QUICK = {
    "steps": 10,
    "pool": 24,
    "measure": 6,
    "gpu_workers": 2,
    "workers": (1, 2),
    "cpu_images": 8,
}


def _study(data: Path, folder: Path, pool: int):
    """A study of the DSB 256 px fluorescence images: 30 test, 40 labeled, the rest the pool
    (``pool`` of them when not 0)."""
    from loop.data.ingest import ingest
    from loop.data.split import split_study
    from loop.study import init_study, open_study

    if (folder / "loop.db").is_file():
        return open_study(folder)
    init_study(folder).close()
    (folder / "loop.toml").write_text(
        'task = "segmentation"\n[model]\nval_fraction = 0.0\nretry_blind = false\n'
        f"# on CUDA, model.fill_gpu gives the stock widths {STOCK} and batches of 32\n"
    )
    study = open_study(folder)
    ingest(study, data / "images", masks=data / "masks", metadata=data / "manifest.json")
    where = ["modality=fluorescence"]
    split_study(study, test=30, initial=40, seed=0, where=where)
    if pool:
        extra = [im["id"] for im in study.store.images("split = 'pool'")][pool:]
        with study.store.atomic() as db:
            for image_id in extra:
                db["images"].update(image_id, {"split": "excluded"})
    return study


def _tables_equal(a: Path, b: Path) -> bool:
    return all(
        (a / name).read_bytes() == (b / name).read_bytes() for name in ("objects.csv", "images.csv")
    )


def _same_objects(a: Path, b: Path) -> bool:
    """Whether two ``loop measure`` outputs found the same objects, measured alike: the
    tables equal but for the model's probabilities, which may differ by float rounding (up to
    1e-4) when images shared forward passes with others."""
    import csv

    def rows(path: Path, name: str) -> list[dict]:
        with open(path / name, newline="") as handle:
            return list(csv.DictReader(handle))

    if rows(a, "images.csv") != rows(b, "images.csv"):
        return False
    left, right = rows(a, "objects.csv"), rows(b, "objects.csv")
    if len(left) != len(right):
        return False
    for x, y in zip(left, right):
        p, q = float(x.pop("model_probability") or 0), float(y.pop("model_probability") or 0)
        if x != y or abs(p - q) > 1e-4:
            return False
    return True


def _measure_cpu(study_path: Path, folder: Path, out: Path, workers: int) -> dict:
    """``loop measure`` with the GPU hidden, in a process of its own (cluster start included),
    into a fresh ``out`` (a folder measured before would be resumed, not measured)."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    code = 'import sys; from loop.cli.main import main; sys.argv = ["loop", *sys.argv[1:]]; main()'
    args = ["measure", str(study_path), str(folder), "-o", str(out), "--workers", str(workers)]
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args, "--cpu", "--json", "--profile"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - began
    if done.returncode:
        raise RuntimeError(f"loop measure --workers {workers} failed:\n{done.stderr[-2000:]}")
    profile = rounded(json.loads(done.stdout)["profile"])
    return {"workers": workers, "seconds": round(seconds, 2), "profile": profile}


def bench_gpu(data: Path, *, quick: bool = False, work: Path = WORK, save=None) -> dict:
    """The figures above, as a dict; ``save(figures)`` after each part (a run stopped by its
    time limit keeps the parts it finished)."""
    import torch

    from bench.models import _speed
    from bench.scale import _link, standin_sweep
    from loop import learn
    from loop.learn.engine import Engine
    from loop.learn.measure import measure_folder

    size = QUICK if quick else FULL
    out: dict = {"quick": quick, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    study = _study(data, work / "study", size["pool"])
    began = time.perf_counter()
    report = learn.train(study, steps=size["steps"])
    seconds = time.perf_counter() - began
    row = learn.model_row(study, report.model_id)
    out["train"] = {
        "steps": report.steps,
        "seconds": round(seconds, 2),
        "steps_per_s": round(report.steps / seconds, 2),
        "device": row["device"],
        "on_device": json.loads(row["params"]).get("on_device", {}),
    }
    _part(out, "train", "train", save)
    out["measure_vs_forward"] = _speed(study, report.model_id, data, n=8 if quick else 32)
    began = time.perf_counter()
    scored = learn.score(study, k=16, model_id=report.model_id)
    seconds = time.perf_counter() - began
    out["score"] = {
        "images": scored.scored,
        "seconds": round(seconds, 2),
        "images_per_s": round(scored.scored / seconds, 2),
        "target": ">= 100 images/s on 256 px images (one GPU)",
        "profile": rounded(scored.profile) if scored.profile else {},
    }
    _part(out, "score", "score", save)
    pool = [Path(r["root"]) / r["path"] for r in study.store.images("split = 'pool'")]
    folder = _link(pool[: size["measure"]], work / f"measure-{size['measure']}")
    import shutil

    shutil.rmtree(work / "out" / "gpu", ignore_errors=True)
    began = time.perf_counter()
    done = measure_folder(study, folder, work / "out" / "gpu", engine=Engine())
    seconds = time.perf_counter() - began
    out["measure_gpu"] = {
        "images": size["measure"],
        "objects": done.n_objects,
        "seconds": round(seconds, 2),
        "images_per_s": round(size["measure"] / seconds, 2),
        "target": ">= 20 images/s (one GPU)",
        "profile": rounded(done.profile),
    }
    _part(out, "measure_gpu", "measure on the device", save)
    # the same, one image a forward pass (the CPU's way): what sharing the passes gains
    from dataclasses import replace

    config = study.config
    study.config = replace(config, model=replace(config.model, images_per_pass=1))
    shutil.rmtree(work / "out" / "gpu-one", ignore_errors=True)
    began = time.perf_counter()
    measure_folder(study, folder, work / "out" / "gpu-one", engine=Engine())
    alone = time.perf_counter() - began
    study.config = config
    out["measure_gpu"]["one_image_a_pass"] = {
        "seconds": round(alone, 2),
        "images_per_s": round(size["measure"] / alone, 2),
        "ratio_shared_to_one": round(alone / seconds, 2),
        "same_objects": _same_objects(work / "out" / "gpu", work / "out" / "gpu-one"),
    }
    _part(out, "measure_gpu", "measure on the device, one image a pass", save)
    # several workers sharing the one GPU: the CPU parts (dynamics' CPU share, the
    # per-object measurement) spread over the host's cores while the GPU segments
    shared = size["gpu_workers"]
    shutil.rmtree(work / "out" / "gpu-workers", ignore_errors=True)
    began = time.perf_counter()
    done = measure_folder(
        study, folder, work / "out" / "gpu-workers", engine=Engine(workers=shared)
    )
    seconds = time.perf_counter() - began
    out["measure_gpu_workers"] = {
        "workers": shared,
        "images": size["measure"],
        "seconds": round(seconds, 2),
        "images_per_s": round(size["measure"] / seconds, 2),
        "ratio_to_one_process": round(out["measure_gpu"]["seconds"] / seconds, 2),
        "identical_tables": _tables_equal(work / "out" / "gpu", work / "out" / "gpu-workers"),
        "same_objects": _same_objects(work / "out" / "gpu", work / "out" / "gpu-workers"),
        "profile": rounded(done.profile),
    }
    _part(out, "measure_gpu_workers", f"measure, {shared} workers on the device", save)
    copies = -(-size["cpu_images"] // max(1, len(pool)))
    big = _link(pool, work / f"cpu-{size['cpu_images']}", copies=copies)
    names = sorted(p.name for p in big.iterdir())[: size["cpu_images"]]
    chosen = work / f"cpu-{size['cpu_images']}-exact"
    _link([big / n for n in names], chosen)
    runs = [_measure_cpu(study.path, chosen, work / "out" / f"cpu-{w}", w) for w in size["workers"]]
    first, last = runs[0], runs[-1]
    out["measure_cpu_workers"] = {
        "images": len(names),
        "runs": runs,
        "ratio": round(first["seconds"] / last["seconds"], 2),
        "identical_tables": _tables_equal(
            work / "out" / f"cpu-{first['workers']}", work / "out" / f"cpu-{last['workers']}"
        ),
        "target": f">= 4x with {last['workers']} workers, cluster start included",
    }
    _part(out, "measure_cpu_workers", "measure on CPU workers", save)
    study.close()
    out["standin"] = standin_sweep((1, 2) if quick else (1, 2, 4, 8, 16, 32), per_worker=4)
    _part(out, "standin", "stand-in sweep", save)
    return out


def _part(out: dict, key: str, label: str, save) -> None:
    """Say that a part is done (on stderr) and save the figures so far."""
    print(f"gpu bench: {label} {out[key]}", file=sys.stderr)
    if save is not None:
        save(out)


def main(argv=None) -> None:
    from bench.timing import environment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    shared = Path(os.environ.get("LOOP_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=shared / "dsb2018_train")
    parser.add_argument("--quick", action="store_true", help="toy sizes: a smoke test")
    parser.add_argument("--work", type=Path, default=WORK)
    args = parser.parse_args(argv)
    env = environment()
    began = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save(figures: dict, done: bool = False) -> None:
        seconds = round(time.perf_counter() - began, 1)
        result = {"env": env, **figures, "seconds": seconds, "complete": done}
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    figures = bench_gpu(args.data, quick=args.quick, work=args.work, save=save)
    save(figures, done=True)
    seconds = json.loads(args.out.read_text())["seconds"]
    print(f"gpu bench: wrote {args.out} ({seconds} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
