"""Gather, on a machine with PyPI, what the GPU bench needs on a bare GPU machine that reaches
no network (the ``device`` machines of this workplace: Python 3.12, PyTorch, NumPy, SciPy,
scikit-image, scikit-learn, tifffile, numba, typer, rich, httpx there; KINDS.md):

    python bench/device_prepare.py            # here: .device/wheels and .device/dsb256
    bash bench/device.sh                      # there, in the repository's root

``.device/`` is ignored by git; name it in the device tool's ``carry``. It holds the wheels of
the packages the machine lacks (``bench/device-requirements.txt``, Python 3.12, no
dependencies resolved: the machine's own NumPy and PyTorch stay) and the DSB 2018 fluorescence
images of 256 x 256 px with their masks and a manifest of them (about 8 MB; the whole set
would not fit in the 64 MiB a call carries).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEVICE = REPO / ".device"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
SHAPE = [256, 256]


def subset(data: Path, out: Path) -> int:
    """Copy the fluorescence images of 256 x 256 px of ``data`` (DSB 2018's layout: images/,
    masks/, manifest.json) into ``out``, with a manifest of those alone; the number copied."""
    rows = [
        r
        for r in json.loads((data / "manifest.json").read_text())
        if r["modality"] == "fluorescence" and r["shape"][:2] == SHAPE
    ]
    shutil.rmtree(out, ignore_errors=True)
    for part, suffix in (("images", ".png"), ("masks", ".tif")):
        (out / part).mkdir(parents=True)
        for r in rows:
            shutil.copyfile(data / part / f"{r['id']}{suffix}", out / part / f"{r['id']}{suffix}")
    (out / "manifest.json").write_text(json.dumps(rows))
    return len(rows)


def wheels(requirements: Path, out: Path) -> None:
    """Download Python 3.12 wheels of ``requirements`` (no dependencies) into ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--implementation", "cp", *platforms,
         "-d", str(out), "-r", str(requirements)],
        check=True,
    )  # fmt: skip


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(os.environ.get("LOOP_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=shared / "dsb2018_train")
    args = parser.parse_args(argv)
    n = subset(args.data, DEVICE / "dsb256")
    wheels(REPO / "bench" / "device-requirements.txt", DEVICE / "wheels")
    mib = size(DEVICE) / 2**20
    print(f"{DEVICE}: {n} images, {len(list((DEVICE / 'wheels').iterdir()))} wheels, "
          f"{mib:.1f} MiB (with the working tree, at most 64 MiB travel)")  # fmt: skip


if __name__ == "__main__":
    main()
