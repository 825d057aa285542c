import json

from conftest import tiny_rounds_toml
from typer.testing import CliRunner

from loop.cli import app
from loop.core.images import read_image, read_mask
from loop.data.demo import find_dsb, write_synthetic


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


DEMO_TINY = tiny_rounds_toml(["demo-a", "demo-b", "demo-c"])


def test_demo_falls_back_to_synthetic(tmp_path, monkeypatch, ls_remote):
    """The whole demo on synthetic nuclei (a tiny network, one round) against the session's
    Label Studio as an existing server."""
    from loop.study import init_study

    for key, value in ls_remote.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LOOP_DEMO_DATA", str(tmp_path / "nothing"))
    folder = tmp_path / "demo"
    init_study(folder).close()
    (folder / "loop.toml").write_text(DEMO_TINY)  # a demo study keeps its loop.toml
    result = CliRunner().invoke(app, ["demo", str(folder), "--rounds", "1"])
    assert result.exit_code == 0, result.stderr
    assert "synthetic nuclei" in result.stderr
    assert "report:" in result.stdout and (folder / "report" / "index.html").is_file()
    status = json.loads(CliRunner().invoke(app, ["status", str(folder), "--json"]).stdout)
    assert status["n_images"] == 60
    assert [(r["round"], r["status"]) for r in status["rounds"]] == [(0, "done"), (1, "evaluated")]
    # the batch with a consensus moved to the labeled split
    assert status["by_split"]["test"] == 12 and status["by_split"]["labeled"] > 6
    # a second run keeps the split, adds nothing and runs no further round
    result = CliRunner().invoke(app, ["demo", str(folder), "--rounds", "1"])
    assert result.exit_code == 0, result.stderr
    assert "ingested 60 images (0 new)" in result.stderr
    status = json.loads(CliRunner().invoke(app, ["status", str(folder), "--json"]).stdout)
    assert len(status["rounds"]) == 2
