"""Atomic writes: a reader sees the old file or the new one, never half; no temporary left."""

import pytest

from loop.core.files import atomic_path


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")
    with pytest.raises(OSError, match="No space left on device"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise OSError(28, "No space left on device")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_the_temporary_keeps_the_extension_and_its_name(tmp_path):
    with atomic_path(tmp_path / "sub" / "mask.tif") as tmp:
        assert tmp.suffix == ".tif"  # formats go by suffix
        # the same name every time: torch.save records it in the archive, and the same
        # weights must give the same sha256
        assert tmp.name == ".mask.tmp.tif"
        tmp.write_bytes(b"x")
    assert (tmp_path / "sub" / "mask.tif").read_bytes() == b"x"
