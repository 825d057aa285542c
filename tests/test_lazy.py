"""Large images read region by region: OME-TIFF, RGB and multi-page TIFF through tifffile's
Zarr store, OME-Zarr folders (NGFF 0.4 and 0.5) through zarr, and per-object intensities
measured band by band in bounded memory."""

import shutil
import tracemalloc

import numpy as np
import pytest
import tifffile
import zarr

from loop.core import objects
from loop.core.images import read_image
from loop.core.lazy import LazyImage, open_image, store_sha256, whole
from loop.errors import UnreadableImage, UnsupportedImage


@pytest.fixture
def channels_first():
    rng = np.random.default_rng(0)
    return rng.integers(0, 4000, (3, 600, 500), dtype=np.uint16)


def _ome_zarr(path, array, axes="tczyx", *, version="0.4"):
    group = zarr.open_group(str(path), mode="w")
    group.create_array(
        "0", shape=array.shape, chunks=(1,) * (array.ndim - 2) + (128, 128), dtype=array.dtype
    )[:] = array
    scale = {"axes": [{"name": a} for a in axes], "datasets": [{"path": "0"}]}
    if version == "0.4":
        group.attrs["multiscales"] = [scale]
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [scale]}
    return path


def test_a_tiled_ome_tiff_is_read_by_region(tmp_path, channels_first):
    path = tmp_path / "slide.ome.tif"
    tifffile.imwrite(path, channels_first, tile=(128, 128), ome=True, metadata={"axes": "CYX"})
    image = open_image(path, lazy_above=256)
    assert isinstance(image, LazyImage) and image.shape == (600, 500, 3)
    eager = read_image(path)
    assert np.array_equal(image[130:390, 70:333], eager[130:390, 70:333])
    assert np.array_equal(whole(image), eager) and image.dtype == np.uint16
    # below the threshold the file is read whole, as before
    small = open_image(path, lazy_above=600)
    assert isinstance(small, np.ndarray) and np.array_equal(small, eager)


@pytest.mark.parametrize(
    ("shape", "kwargs", "expected"),
    [
        ((400, 300, 3), {"photometric": "rgb"}, (400, 300, 3)),  # samples last (YXS)
        ((2, 400, 300), {"photometric": "minisblack"}, (400, 300, 2)),  # two pages
        ((400, 300), {}, (400, 300)),
    ],
)
def test_rgb_multipage_and_grey_tiffs(tmp_path, shape, kwargs, expected):
    array = np.arange(np.prod(shape), dtype=np.uint32).reshape(shape).astype(np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", array, **kwargs)
    image = open_image(tmp_path / "a.tif", lazy_above=100)
    assert isinstance(image, LazyImage) and image.shape == expected
    assert np.array_equal(image[10:50, 200:300], read_image(tmp_path / "a.tif")[10:50, 200:300])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_an_ome_zarr_folder(tmp_path, channels_first, version):
    path = _ome_zarr(tmp_path / "well.ome.zarr", channels_first[None, :, None], version=version)
    image = open_image(path, lazy_above=10_000)  # a store is always read by region
    assert image.shape == (600, 500, 3)
    assert np.array_equal(image[5:300, 400:500], np.moveaxis(channels_first, 0, -1)[5:300, 400:])
    copy = tmp_path / "copy.ome.zarr"
    shutil.copytree(path, copy)
    assert store_sha256(copy) == store_sha256(path)
    zarr.open_group(str(copy), mode="r+")["0"][0, 0, 0, 0, 0] += 1
    assert store_sha256(copy) != store_sha256(path)


def test_plain_zarr_arrays_take_their_axes_from_the_shape(tmp_path):
    grey = zarr.open_array(str(tmp_path / "g.zarr"), mode="w", shape=(50, 60), dtype="u1")
    grey[:] = 7
    assert open_image(tmp_path / "g.zarr", lazy_above=0).shape == (50, 60)
    zarr.open_array(str(tmp_path / "c.zarr"), mode="w", shape=(2, 50, 60), dtype="u1")
    assert open_image(tmp_path / "c.zarr", lazy_above=0).shape == (50, 60, 2)
    zarr.open_array(str(tmp_path / "d.zarr"), mode="w", shape=(2, 3, 50, 60), dtype="u1")
    with pytest.raises(UnsupportedImage, match="without OME axes: save it as OME-Zarr"):
        open_image(tmp_path / "d.zarr", lazy_above=0)


def test_bad_stores_and_layouts_are_refused(tmp_path, channels_first):
    planes = channels_first[:2].reshape(1, 1, 2, 600, 500)  # t, c, z (2 planes), y, x
    stack = _ome_zarr(tmp_path / "z.ome.zarr", planes)
    with pytest.raises(UnsupportedImage, match="project z-stacks or time series to 2-D"):
        open_image(stack, lazy_above=0)
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(UnreadableImage, match="not a readable Zarr store"):
        open_image(tmp_path / "empty.zarr", lazy_above=0)
    zarr.open_group(str(tmp_path / "plate.zarr"), mode="w").create_group("A")
    with pytest.raises(UnreadableImage, match="without OME-NGFF 'multiscales'"):
        open_image(tmp_path / "plate.zarr", lazy_above=0)
    array = zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=(5, 6), dtype="u1")
    with pytest.raises(UnsupportedImage, match="expected a Y and an X axis"):
        LazyImage(tmp_path / "a.zarr", array, "ZX")
    with pytest.raises(TypeError, match="two slices"):
        LazyImage(tmp_path / "a.zarr", array, "YX")[3]


def test_intensities_band_by_band_match_and_stay_in_bounded_memory(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 60000, (2, 1500, 1200), dtype=np.uint16)
    labels = np.zeros((1500, 1200), np.int32)
    for k in range(1, 40):  # tall objects that cross many bands
        r, c = rng.integers(0, 1300), rng.integers(0, 1150)
        labels[r : r + 200, c : c + 40] = k
    ids = np.unique(labels)[1:]
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, pixels, tile=(256, 256), photometric="minisblack")
    lazy = open_image(path, lazy_above=1000)
    one_band = objects.per_object_stats(labels, np.moveaxis(pixels, 0, -1), ids)
    monkeypatch.setattr(objects, "BAND_VALUES", 64 * 1200)  # 64 rows a band
    tracemalloc.start()
    banded = objects.per_object_stats(labels, lazy, ids)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert np.allclose(np.array(banded), np.array(one_band), rtol=1e-12)
    assert [s[0][1:3] for s in banded] == [s[0][1:3] for s in one_band]  # exact min, max
    # one channel as float64 is 14.4 MB; the bands keep the peak far below it
    assert peak < 1500 * 1200 * 8 / 4


def test_a_header_declaring_a_huge_image_is_refused_before_anything_is_allocated(tmp_path):
    from test_images import _tiff_claiming

    from loop.errors import ImageTooLarge

    tiff = _tiff_claiming(tmp_path / "bomb.tif", 100_000, 100_000)
    with pytest.raises(ImageTooLarge, match=r"100,000 x 100,000 pixels: its label image alone"):
        open_image(tiff, lazy_above=4096)
    store = zarr.create_array(
        str(tmp_path / "huge.zarr"), shape=(10**6, 10**6), chunks=(4096, 4096), dtype="u1"
    )
    assert store.nchunks_initialized == 0
    with pytest.raises(ImageTooLarge, match=r"1,000,000 x 1,000,000 pixels: .* 3,725 GiB"):
        open_image(tmp_path / "huge.zarr", lazy_above=4096)


def test_missing_zarr_chunks_are_counted_and_said(tmp_path, channels_first):
    from loop.core.lazy import missing_note

    path = _ome_zarr(tmp_path / "cut.ome.zarr", channels_first, axes="cyx")
    assert open_image(path, lazy_above=0).missing_chunks == 0
    assert missing_note(open_image(path, lazy_above=0)) is None
    chunk = next(p for p in (path / "0").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.unlink()
    image = open_image(path, lazy_above=0)
    assert image.missing_chunks == 1
    assert missing_note(image) == (
        "1 of 60 chunks are missing from the Zarr store: those regions were read as its fill "
        "value (0)"
    )
