import pytest

from loop.errors import StudyExists, StudyNotFound
from loop.study import init_study, open_study


def test_init_then_open(tmp_path):
    with init_study(tmp_path / "s", task="classification") as study:
        assert (tmp_path / "s" / "loop.toml").is_file()
        assert (tmp_path / "s" / "loop.db").is_file()
        assert "classification" in (tmp_path / "s" / "loop.toml").read_text()
    with open_study(tmp_path / "s") as study:
        assert study.config.task == "classification"
        assert study.resolve("models/a.pt") == tmp_path / "s" / "models" / "a.pt"
        assert study.resolve("/abs/m.tif").as_posix() == "/abs/m.tif"


def test_init_twice(tmp_path):
    init_study(tmp_path / "s").close()
    with pytest.raises(StudyExists, match="already holds a study"):
        init_study(tmp_path / "s")


def test_open_missing(tmp_path):
    with pytest.raises(StudyNotFound, match="is not a study .*loop init"):
        open_study(tmp_path / "nothing")
