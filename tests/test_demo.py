import json

from typer.testing import CliRunner

from loop.cli import app
from loop.demo import find_dsb, write_synthetic
from loop.images import read_image, read_mask


def test_write_synthetic(tmp_path):
    folder = write_synthetic(tmp_path / "syn", 4, shape=(64, 64))
    images = sorted((folder / "images").iterdir())
    assert len(images) == 4
    image = read_image(images[0])
    mask = read_mask(folder / "masks" / images[0].name, image.shape)
    assert image.dtype.name == "uint16" and mask.max() >= 1
    assert (folder / "metadata.csv").read_text().count("scopeA") == 2


def test_find_dsb_from_env_and_parents(tmp_path, monkeypatch):
    dsb = tmp_path / "shared" / "data" / "dsb2018_train"
    (dsb / "images").mkdir(parents=True)
    (dsb / "masks").mkdir()
    monkeypatch.delenv("LOOP_DEMO_DATA", raising=False)
    assert find_dsb(tmp_path / "a" / "b") == dsb
    monkeypatch.setenv("LOOP_DEMO_DATA", str(tmp_path / "nothing"))
    assert find_dsb(tmp_path) is None


def test_demo_falls_back_to_synthetic(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOP_DEMO_DATA", str(tmp_path / "nothing"))
    result = CliRunner().invoke(app, ["demo", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.stderr
    assert "synthetic nuclei" in result.stderr
    status = json.loads(
        CliRunner().invoke(app, ["status", str(tmp_path / "demo"), "--json"]).stdout
    )
    assert status["n_images"] == 60
    assert status["by_split"] == {"labeled": 10, "pool": 32, "test": 18}
    # a second run keeps the split and adds nothing
    result = CliRunner().invoke(app, ["demo", str(tmp_path / "demo")])
    assert "ingested 60 images (0 new)" in result.stdout
