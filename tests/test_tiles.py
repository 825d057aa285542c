import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import measure

from loop.core.tiles import Tiling, crop, stitch
from loop.errors import ConfigError, MalformedAnnotation


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when ``a`` and ``b`` are the same label image up to a renaming of the labels."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(pairs.T) == len(np.unique(a)) == len(np.unique(b)) and bool(
        ((pairs[0] == 0) == (pairs[1] == 0)).all()
    )


def random_labels(rng: np.random.Generator, shape, n: int) -> np.ndarray:
    """Random overlapping rectangles and discs (later ones on top), some touching or huge;
    every object connected (an object cut in two by a later one becomes two objects)."""
    out = np.zeros(shape, dtype=np.int32)
    rr, cc = np.ogrid[: shape[0], : shape[1]]
    for label in range(1, n + 1):
        r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        size = int(rng.integers(2, max(3, min(shape) // 2)))
        if rng.random() < 0.5:
            out[max(0, r - size) : r + size, max(0, c - size) : c + size] = label
        else:
            out[(rr - r) ** 2 + (cc - c) ** 2 <= size**2] = label
    return measure.label(out, background=0).astype(np.int32)


def tiles_of(labels: np.ndarray, tiling: Tiling, rng: np.random.Generator):
    """Each tile's labels renamed at random, as an annotator of that tile alone would name
    them."""
    out = []
    for box in tiling.boxes(*labels.shape):
        part = crop(labels, box)
        values = np.unique(part[part > 0])
        names = np.zeros(int(labels.max()) + 1, dtype=np.int32)
        names[values] = rng.permutation(len(values)) + 1
        out.append((box, names[part]))
    return out


def test_boxes_cover_with_the_overlap_and_leave_small_images_whole():
    tiling = Tiling(tile=256, above=512, overlap=32)
    assert tiling.boxes(512, 400) == [(0, 0, 512, 400)]
    boxes = tiling.boxes(520, 696)
    assert len(boxes) == 9 and {b[2:] for b in boxes} == {(195, 254)}
    covered = np.zeros((520, 696), int)
    for r, c, h, w in boxes:
        covered[r : r + h, c : c + w] += 1
    assert covered.min() == 1
    # neighbours share exactly the overlap
    assert boxes[1][1] - (boxes[0][1] + boxes[0][3]) == -32


@settings(max_examples=60, deadline=None)
@given(
    st.integers(33, 200),
    st.integers(33, 200),
    st.integers(32, 64),
    st.integers(1, 16),
    st.integers(0, 40),
    st.integers(0, 2**32 - 1),
)
def test_cut_and_stitched_back_is_the_same_label_image(h, w, tile, overlap, n, seed):
    rng = np.random.default_rng(seed)
    labels = random_labels(rng, (h, w), n)
    tiling = Tiling(tile=tile, above=tile, overlap=overlap)
    stitched = stitch(tiles_of(labels, tiling, rng), (h, w))
    assert stitched.dtype == np.int32 and stitched.shape == (h, w)
    assert same_partition(stitched, labels)
    assert set(np.unique(stitched)) - {0} == set(range(1, int(stitched.max()) + 1))


def test_touching_objects_stay_apart_and_a_disagreeing_tile_is_not_merged():
    labels = np.zeros((100, 100), np.int32)
    labels[40:60, 20:50] = 1
    labels[40:60, 50:80] = 2  # touches object 1 along the middle of the overlap
    tiling = Tiling(tile=64, above=64, overlap=24)
    tiles = tiles_of(labels, tiling, np.random.default_rng(0))
    assert same_partition(stitch(tiles, labels.shape), labels)
    # without overlap an object cut by a tile edge cannot be recognised: it stays in pieces
    bare = Tiling(tile=64, above=64, overlap=0)
    one = np.zeros((100, 100), np.int32)
    one[40:60, 30:70] = 1
    pieces = stitch(tiles_of(one, bare, np.random.default_rng(0)), one.shape)
    assert pieces.max() == 4  # the 50-px tiles cut it along a row and a column
    # tiles that disagree about an object in their overlap keep their own versions of it
    wide = Tiling(tile=64, above=64, overlap=24)
    tiles = tiles_of(one, wide, np.random.default_rng(0))
    (box, right), left_end = tiles[1], tiles[0][0][3]  # top right tile; overlap box[1]..left_end
    right = right.copy()
    right[:, : left_end - box[1] - 4] = 0  # its annotator drew only 4 columns of it there
    tiles[1] = (box, right)
    # its piece stays apart; the three tiles that agree make one object
    assert stitch(tiles, one.shape).max() == 2


def test_bad_tilings_and_tiles_are_refused():
    with pytest.raises(ConfigError, match="--tile 16: give a tile side of at least 32"):
        Tiling(tile=16)
    with pytest.raises(ConfigError, match=r"--tile-overlap 200: give 0..128"):
        Tiling(tile=256, overlap=200)
    with pytest.raises(ConfigError, match="--tile-above 100 is smaller than --tile 256"):
        Tiling(tile=256, above=100)
    with pytest.raises(MalformedAnnotation, match=r"labels of shape \(5, 5\), expected \(10, 10\)"):
        stitch([((0, 0, 10, 10), np.zeros((5, 5), int))], (10, 10))
    with pytest.raises(MalformedAnnotation, match="leave 50 pixels of the 10x15 image uncovered"):
        stitch([((0, 0, 10, 10), np.zeros((10, 10), int))], (10, 15))
