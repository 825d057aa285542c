"""Finding a folder's images: OME-Zarr folders are images, not folders to search."""

import numpy as np
import tifffile
import zarr

from loop.data.find import find_images


def test_stores_are_found_as_images_not_searched_inside(tmp_path):
    inside = zarr.open_group(str(tmp_path / "plate" / "w1.ome.zarr"), mode="w")
    inside.create_array("0", shape=(8, 8), dtype="u1")  # holds files, none of them an image
    tifffile.imwrite(tmp_path / "plate" / "w2.tif", np.zeros((8, 8), np.uint8))
    found = find_images(tmp_path, (".tif",), stores=True)
    assert [p.name for p in found] == ["w1.ome.zarr", "w2.tif"]
    assert [p.name for p in find_images(tmp_path, (".tif",))] == ["w2.tif"]
