"""Sample data for the demo: the shared DSB2018 nuclei when present, else synthetic nuclei."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DATA_ENV = "LOOP_DEMO_DATA"

# The demo study's loop.toml: the defaults, except a region strategy on a mixed pool, so that
# the rounds show what the loop is for: the model gaining on every modality while the experts
# fix the few places it is wrong (every key not set here keeps its default).
DEMO_TOML = """\
# loop demo study: the defaults (see `loop init`), except what is set here.
task = "segmentation"
groups = ["modality"]    # each modality keeps its share of the batches and is reported apart

[score]
strategy = "typiclust+groups@region"  # typical regions of what no label covers yet
k = 24                   # regions per round
pool_sample = 120        # each round looks at 120 pool images drawn at random (bounded cost)

[regions]
size = 128               # square regions of 128 px, the unit an expert annotates
per_image = 2            # at most 2 regions of one image per round
"""
# (test images, initial labels) of the demo split: DSB2018 (every modality, stratified), synthetic
DSB_SPLIT = (60, 4)
SYNTHETIC_SPLIT = (12, 6)


def find_dsb(start: Path | None = None) -> Path | None:
    """A DSB2018-layout folder (``images/``, ``masks/``, ``manifest.json``): ``$LOOP_DEMO_DATA``,
    else ``shared/data/dsb2018_train`` in the current folder or one of its parents."""
    if os.environ.get(DATA_ENV):
        path = Path(os.environ[DATA_ENV])
        return path if (path / "images").is_dir() else None
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "shared" / "data" / "dsb2018_train"
        if (candidate / "images").is_dir() and (candidate / "masks").is_dir():
            return candidate
    return None


def write_synthetic(folder: Path, n_images: int = 60, *, shape=(192, 192), rng=0) -> Path:
    """Write ``n_images`` synthetic nuclei images + masks + a metadata CSV into ``folder``.

    Returns the folder; it holds ``images/``, ``masks/`` and ``metadata.csv`` (two fake
    instruments, so the group breakdowns have something to show).
    """
    import tifffile

    from loop.data.synthetic import synthetic_nuclei

    rng = np.random.default_rng(rng)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    rows = ["id,instrument,modality"]
    for i in range(n_images):
        image, mask = synthetic_nuclei(shape, int(rng.integers(8, 25)), rng=rng)
        name = f"synthetic_{i:03d}"
        tifffile.imwrite(folder / "images" / f"{name}.tif", image)
        tifffile.imwrite(folder / "masks" / f"{name}.tif", mask.astype(np.uint16))
        rows.append(f"{name},scope{'AB'[i % 2]},fluorescence")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return folder
