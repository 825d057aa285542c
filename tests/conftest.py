"""Shared fixtures: tiny real-format image folders, studies in temp dirs, the shared data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from loop.config import ModelConfig
from loop.data.synthetic import synthetic_nuclei
from loop.study import init_study

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LOOP_SHARED_DATA", REPO.parent / "shared" / "data"))
DSB = SHARED_DATA / "dsb2018_train"
WBC = SHARED_DATA / "bccd_wbc"


def needs(path: Path):
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not present")


@pytest.fixture
def nuclei_folder(tmp_path) -> Path:
    """tmp/data/images/img{0..5}.tif (16-bit) + tmp/data/masks/img{i}.tif + meta.csv."""
    images, masks = tmp_path / "data" / "images", tmp_path / "data" / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    rows = ["id,instrument,batch"]
    for i in range(6):
        image, mask = synthetic_nuclei((48, 64), 5, rng=i)
        tifffile.imwrite(images / f"img{i}.tif", image)
        tifffile.imwrite(masks / f"img{i}.tif", mask.astype(np.uint16))
        rows.append(f"img{i},scope{'AB'[i % 2]},{i // 3}")
    (tmp_path / "data" / "meta.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "data"


@pytest.fixture
def class_folder(tmp_path) -> Path:
    """tmp/cls/<Class>/<n>.png, 4 classes of RGB images."""
    root = tmp_path / "cls"
    rng = np.random.default_rng(0)
    for k, name in enumerate(["Eosinophil", "Lymphocyte", "Monocyte", "Neutrophil"]):
        (root / name).mkdir(parents=True)
        for j in range(3 + k):
            pixels = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name[:3]}_{j}.png")
    return root


@pytest.fixture
def seg_study(tmp_path):
    with init_study(tmp_path / "study", task="segmentation") as study:
        yield study


@pytest.fixture
def cls_study(tmp_path):
    with init_study(tmp_path / "wbc", task="classification") as study:
        yield study


def need_label_studio() -> None:
    """Skip (never on CI, which installs it) without the DSB data or a Label Studio."""
    from connectors.labelstudio_server import find_executable
    from loop.errors import ServerStartFailed

    if not DSB.exists():
        pytest.skip(f"{DSB} not present")
    try:
        find_executable()
    except ServerStartFailed as exc:
        if os.environ.get("CI"):
            raise  # CI installs the server: never skip there
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def ls_study(tmp_path_factory):
    """A DSB study (fluorescence: 30% test, 10 initial) with its own real Label Studio,
    started once per test session on 127.0.0.1 and stopped at the end."""
    from loop.cli.wiring import server_of
    from loop.data.ingest import ingest
    from loop.data.split import split_study

    need_label_studio()
    folder = tmp_path_factory.mktemp("ls") / "study"
    with init_study(folder) as study:
        ingest(study, DSB / "images", masks=DSB / "masks", metadata=DSB / "manifest.json")
        split_study(study, test=0.3, initial=10, seed=0, where=["modality=fluorescence"])
        server = server_of(study)
        server.start(timeout=300)
    yield folder
    server.stop()


@pytest.fixture
def browser():
    """A headless Chromium (Debian's, through the system chromedriver), quit after the test.
    Skipped where it is not installed, unless ``LOOP_REQUIRE_BROWSER`` is set (``.ci/run``
    sets it once apt-get has installed it)."""
    from browser import BrowserMissing, chromium

    try:
        driver = chromium()
    except BrowserMissing as exc:
        if os.environ.get("LOOP_REQUIRE_BROWSER"):
            raise
        pytest.skip(str(exc))
    yield driver
    driver.quit()


ONE_IMAGE = "20c37b1ad2"  # a 512 x 640 DSB fluorescence image of 24 nuclei


def one_dsb_study(folder: Path, toml: str, data: Path, stem: str = ONE_IMAGE) -> Path:
    """A study at ``folder`` with ``toml`` as its loop.toml and one DSB image (``stem``) with
    its mask, copied into ``data`` and ingested; returns the study's folder."""
    from loop.data.ingest import ingest
    from loop.study import open_study

    for kind, suffix in (("images", "png"), ("masks", "tif")):
        (data / kind).mkdir(parents=True)
        source = next((DSB / kind).glob(f"{stem}*.{suffix}"))
        (data / kind / source.name).write_bytes(source.read_bytes())
    init_study(folder).close()
    (folder / "loop.toml").write_text(toml)
    with open_study(folder) as study:
        ingest(study, data / "images", masks=data / "masks")
    return folder


def remote_env(ls_study) -> dict:
    """``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY`` of the session's Label Studio, for
    studies that use it as an existing server. Read when called: a test may have restarted
    the server on another port."""
    from loop.cli.wiring import server_of
    from loop.study import open_study

    with open_study(ls_study) as study:
        server = server_of(study)
        url = server.require().url
        token = server.credentials()["admin"]["token"]
    return {"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": token}


@pytest.fixture
def ls_remote(ls_study) -> dict:
    return remote_env(ls_study)


def tiny_rounds_toml(annotators) -> str:
    """A loop.toml for round tests: a tiny network (8 steps), batches of 3, the given
    simulated annotators (names unique on the session's server)."""
    names = ", ".join(f'"{name}"' for name in annotators)
    return f"""\
task = "segmentation"
[model]
nbase = [2, 8, 16, 32]
crop = 32
batch_size = 4
min_steps = 8
max_steps = 8
val_fraction = 0.0
retry_blind = false
[score]
k = 3
shortlist = 2
chunk = 4
[rounds]
min_agreement = 0.3
annotators = [{names}]
"""


TINY_SEG_TOML = (
    "[model]\nnbase = [2, 8, 16]\ncrop = 32\nbatch_size = 2\nmin_steps = 4\nmax_steps = 4\n"
    "retry_blind = false\n"
)


def cli_seg_study(folder: Path, nuclei_folder: Path) -> Path:
    """A segmentation study made through the CLI (init, a tiny network, ingest of
    ``nuclei_folder``, split 2 test / 2 initial), as a user would; returns its folder."""
    from typer.testing import CliRunner

    from loop.cli import app

    def run(*args):
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output

    run("init", folder)
    (folder / "loop.toml").write_text(TINY_SEG_TOML)
    run("ingest", folder, nuclei_folder / "images", "--masks", nuclei_folder / "masks")
    run("split", folder, "--test", 2, "--initial", 2)
    return folder


def clusters(sizes, rng=0, spread=0.05):
    """Embeddings of shape (sum(sizes), 3) in well-separated clusters of these sizes, and each
    row's cluster: the input of the selector and strategy tests."""
    rng = np.random.default_rng(rng)
    parts = [rng.normal(5.0 * i, spread, (n, 3)) for i, n in enumerate(sizes)]
    return np.concatenate(parts), np.repeat(np.arange(len(sizes)), sizes)


CPU = torch.device("cpu")
TINY = ModelConfig(nbase=(2, 8, 16, 32), crop=32, batch_size=4, min_steps=1, max_steps=40)
"""A Cellpose network small enough to train in seconds on the CPU."""


@pytest.fixture
def passes(monkeypatch) -> list[tuple[int, int, int]]:
    """The (images, M, N) of each call of Cellpose's ``core.run_net`` while the test runs:
    which images shared a forward pass."""
    from loop.models import cellpose_seg as cs

    seen, real = [], cs.core.run_net

    def spy(net, stack, **kwargs):
        seen.append(stack.shape[:3])
        return real(net, stack, **kwargs)

    monkeypatch.setattr(cs.core, "run_net", spy)
    return seen


@pytest.fixture(scope="module")
def tiny_data():
    """Four synthetic 64x64 images with nuclei, and their training data (32 px crops)."""
    from loop.models.cellpose_train import prepare

    pairs = [synthetic_nuclei((64, 64), 6, radius=(4, 7), rng=i) for i in range(4)]
    return pairs, prepare([p[0] for p in pairs], [p[1] for p in pairs], crop=32, device=CPU)


def _mount(*args) -> None:
    import subprocess

    done = subprocess.run(["mount", *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount here (root and mount(8) needed): {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB file system (tmpfs) at ``tmp/disk``: a disk that fills up."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", disk)
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def read_only(tmp_path):
    """``read_only(folder)``: the same folder seen through a read-only bind mount."""
    import subprocess

    mounts = []

    def make(folder: Path) -> Path:
        view = tmp_path / f"ro{len(mounts)}"
        view.mkdir()
        _mount("--bind", folder, view)
        mounts.append(view)
        _mount("-o", "remount,ro,bind", view)
        return view

    yield make
    for view in reversed(mounts):
        subprocess.run(["umount", "-l", str(view)], check=False)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until about ``leave`` bytes are free."""
    import shutil

    free = shutil.disk_usage(disk).free
    (disk / "filler").write_bytes(bytes(max(0, free - leave)))
