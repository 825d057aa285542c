import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from loop.core.images import (
    class_of,
    count_objects,
    image_info,
    index_table,
    lookup,
    normalize_percentile,
    read_image,
    read_mask,
    read_sidecar,
    read_table,
    write_labels,
)
from loop.errors import (
    BadMask,
    EmptyFile,
    MetadataError,
    UnreadableImage,
    UnsupportedImage,
)


def test_reads_16bit_tiff(tmp_path):
    data = (np.arange(12 * 10).reshape(12, 10) * 500).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", data)
    out = read_image(tmp_path / "a.tif")
    assert out.dtype == np.uint16 and np.array_equal(out, data)
    info = image_info(tmp_path / "a.tif")
    assert (info.height, info.width, info.channels, info.dtype) == (12, 10, 1, "uint16")
    assert len(info.sha256) == 64


def test_channels_first_tiff_is_moved_last(tmp_path):
    data = np.random.default_rng(0).integers(0, 4000, (2, 30, 20), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", data)
    out = read_image(tmp_path / "c.tif")
    assert out.shape == (30, 20, 2)
    assert np.array_equal(out[..., 1], data[1])


def test_reads_png_rgb_and_jpeg(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (16, 17, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "a.jpg")
    assert np.array_equal(read_image(tmp_path / "a.png"), rgb)
    assert read_image(tmp_path / "a.jpg").shape == (16, 17, 3)


def test_reads_16bit_png(tmp_path):
    data = (np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(data).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint16 and np.array_equal(out, data)


def test_empty_file(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(EmptyFile, match=r"e.png: the file is empty \(0 bytes\)"):
        read_image(tmp_path / "e.png")


def test_truncated_png(tmp_path):
    Image.fromarray(np.zeros((64, 64), np.uint8) + 7).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImage, match="t.png: not a readable image .*truncated"):
        read_image(tmp_path / "t.png")


def test_not_an_image(tmp_path):
    (tmp_path / "n.tif").write_text("hello, not a tiff")
    with pytest.raises(UnreadableImage, match="n.tif: not a readable image"):
        read_image(tmp_path / "n.tif")


def test_missing_file(tmp_path):
    with pytest.raises(UnreadableImage, match="no such file"):
        read_image(tmp_path / "gone.png")


def test_stack_is_unsupported(tmp_path):
    tifffile.imwrite(tmp_path / "z.tif", np.zeros((12, 30, 30), np.uint16))
    with pytest.raises(UnsupportedImage, match=r"shape \(12, 30, 30\): only 2-D images"):
        read_image(tmp_path / "z.tif")


def test_mask_ok_and_counted(tmp_path):
    mask = np.zeros((10, 12), np.uint16)
    mask[1:3, 1:3] = 4
    mask[5:8, 5:9] = 9
    tifffile.imwrite(tmp_path / "m.tif", mask)
    out = read_mask(tmp_path / "m.tif", (10, 12))
    assert out.dtype == np.int32 and count_objects(out) == 2


def test_integral_float_mask_is_accepted(tmp_path):
    tifffile.imwrite(tmp_path / "m.tif", np.array([[0, 1], [2, 2]], np.float32))
    assert read_mask(tmp_path / "m.tif").tolist() == [[0, 1], [2, 2]]


def test_mask_shape_mismatch(tmp_path):
    tifffile.imwrite(tmp_path / "m.tif", np.zeros((10, 12), np.uint16))
    with pytest.raises(BadMask, match=r"mask shape \(10, 12\) differs from its image's \(10, 13\)"):
        read_mask(tmp_path / "m.tif", (10, 13))


def test_probability_map_is_not_a_mask(tmp_path):
    tifffile.imwrite(tmp_path / "p.tif", np.full((4, 4), 0.25, np.float32))
    with pytest.raises(BadMask, match="non-integer values; expected an integer label image"):
        read_mask(tmp_path / "p.tif")


def test_negative_mask(tmp_path):
    tifffile.imwrite(tmp_path / "n.tif", np.array([[0, -1]], np.int16))
    with pytest.raises(BadMask, match="negative labels"):
        read_mask(tmp_path / "n.tif")


def test_rgb_mask(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(BadMask, match=r"mask has shape \(4, 4, 3\); expected a 2-D label image"):
        read_mask(tmp_path / "rgb.png")


def test_unreadable_mask(tmp_path):
    (tmp_path / "m.tif").write_bytes(b"junk")
    with pytest.raises(BadMask, match="mask is not readable"):
        read_mask(tmp_path / "m.tif")


def test_normalize_percentile_maps_percentiles_to_0_and_1():
    image = np.linspace(0, 1000, 9999).reshape(101, 99).astype(np.uint16)
    out = normalize_percentile(image, 1, 99)
    assert out.dtype == np.float32
    assert np.isclose(np.percentile(out, 1), 0, atol=1e-3)
    assert np.isclose(np.percentile(out, 99), 1, atol=1e-3)


def test_normalize_per_channel_and_flat():
    image = np.stack([np.arange(100.0).reshape(10, 10), np.full((10, 10), 5.0)], -1)
    out = normalize_percentile(image, 0, 100)
    assert out[..., 0].max() == 1 and np.all(out[..., 1] == 0)


def test_read_table_csv_and_json(tmp_path):
    (tmp_path / "m.csv").write_text("filename,batch\na.png,1\nb.png,2\n")
    (tmp_path / "m.json").write_text(json.dumps({"a": {"batch": 1}, "b": {"batch": 2}}))
    csv_index = index_table(read_table(tmp_path / "m.csv"), tmp_path / "m.csv")
    json_index = index_table(read_table(tmp_path / "m.json"), tmp_path / "m.json")
    assert lookup(csv_index, "sub/a.png")["batch"] == "1"
    assert lookup(json_index, "sub/b.png")["batch"] == 2
    assert lookup(json_index, "c.png") is None


def test_read_table_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MetadataError, match="bad.json: cannot parse"):
        read_table(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(MetadataError, match="expected a JSON list of objects"):
        read_table(tmp_path / "list.json")
    (tmp_path / "empty.csv").write_text("id,batch\n")
    with pytest.raises(MetadataError, match="the table has no rows"):
        read_table(tmp_path / "empty.csv")
    with pytest.raises(MetadataError, match="no such metadata file"):
        read_table(tmp_path / "none.csv")


def test_index_table_errors(tmp_path):
    with pytest.raises(MetadataError, match="none of the key columns id, filename"):
        index_table([{"batch": 1}], "m.csv")
    with pytest.raises(MetadataError, match="the key 'a' appears in more than one row"):
        index_table([{"id": "a"}, {"id": "a"}], "m.csv")


def test_sidecar(tmp_path):
    (tmp_path / "a.png.json").write_text('{"instrument": "x"}')
    assert read_sidecar(tmp_path / "a.png") == {"instrument": "x"}
    assert read_sidecar(tmp_path / "b.png") is None
    (tmp_path / "c.json").write_text("[1]")
    with pytest.raises(MetadataError, match="sidecar must be a JSON object"):
        read_sidecar(tmp_path / "c.png")
    (tmp_path / "d.json").write_text("{")
    with pytest.raises(MetadataError, match="sidecar is not valid JSON"):
        read_sidecar(tmp_path / "d.png")


def test_class_of():
    assert class_of({"Image": "1", "Category": " NEUTROPHIL "}, "l.csv") == "NEUTROPHIL"
    with pytest.raises(MetadataError, match="none of the class columns class, label, category"):
        class_of({"id": "a"}, "l.csv")


def test_write_labels_round_trip(tmp_path):
    from loop.core.images import write_labels

    mask = np.zeros((5, 6), np.int64)
    mask[1, 1], mask[3, 4] = 2, 70000
    write_labels(tmp_path / "a" / "m.tif", mask)
    assert np.array_equal(read_mask(tmp_path / "a" / "m.tif"), mask)
    assert not list((tmp_path / "a").glob("*.tmp.tif"))


def test_write_labels_leaves_no_temporary_file_when_the_disk_is_full(tmp_path, monkeypatch):
    import tifffile

    def full(path, *args, **kwargs):
        Path(path).write_bytes(b"")  # what a full disk leaves: a file begun
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(tifffile, "imwrite", full)
    with pytest.raises(OSError, match="No space left on device"):
        write_labels(tmp_path / "a.tif", np.ones((4, 4), np.uint16))
    assert list(tmp_path.iterdir()) == []


def _png_claiming(path, width, height):
    """A PNG whose header claims ``width`` x ``height`` (its data is a 1x1 image's)."""
    import struct
    import zlib

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = zlib.compress(b"\x00\x00")
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    )
    return path


def _tiff_claiming(path, width, height):
    """A 1-strip, 8-bit TIFF of a few hundred bytes whose tags claim ``width`` x ``height``."""
    import struct

    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
            (273, 4, 8 + 2 + 12 * 9 + 4), (277, 3, 1), (278, 4, height), (279, 4, 16)]  # fmt: skip
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        ifd += struct.pack("<HHI", tag, kind, 1) + struct.pack(
            "<I" if kind == 4 else "<HH", value, *([0] if kind == 3 else [])
        )
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + bytes(16))
    return path


def test_decompression_bombs_are_refused_before_allocating(tmp_path):
    from loop.errors import ImageTooLarge

    png = _png_claiming(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(ImageTooLarge, match=r"header declares 10000000000 pixels, more than"):
        read_image(png)
    tiff = _tiff_claiming(tmp_path / "bomb.tif", 100_000, 100_000)
    assert tiff.stat().st_size < 400
    with pytest.raises(ImageTooLarge, match=r"declares shape \(100000, 100000\) \(10,000,000,000"):
        read_image(tiff)
    assert ImageTooLarge.reason == "too-large"
