"""Regions of images: the grid, per-region means of per-pixel maps, and the choice of regions
across the pool with a cap per image."""

import numpy as np
import pytest
from conftest import clusters
from hypothesis import given, settings
from hypothesis import strategies as st

from loop.core.regions import grid, region_means, restrict, select_regions, typical_regions


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 700), st.integers(1, 700), st.integers(16, 300))
def test_the_grid_covers_the_image_with_regions_of_one_size(height, width, size):
    boxes = grid(height, width, size)
    covered = np.zeros((height, width), bool)
    for r, c, h, w in boxes:
        assert 0 <= r and r + h <= height and 0 <= c and c + w <= width
        covered[r : r + h, c : c + w] = True
    assert covered.all()
    assert {(h, w) for _, _, h, w in boxes} == {(min(height, size), min(width, size))}
    assert len(boxes) == (-(-height // size)) * (-(-width // size))


def test_a_bad_grid_is_refused():
    with pytest.raises(ValueError, match="all must be >= 1"):
        grid(10, 10, 0)


def test_region_means_match_the_sums_over_each_region():
    rng = np.random.default_rng(0)
    values, weights = rng.random((70, 90)), rng.random((70, 90))
    weights[:20, :30] = 0.0
    boxes = grid(70, 90, 32)
    got = region_means(values, weights, boxes)
    for (r, c, h, w), mean in zip(boxes, got):
        v, wt = values[r : r + h, c : c + w], weights[r : r + h, c : c + w]
        expected = (v * wt).sum() / wt.sum() if wt.sum() > 1e-9 else 0.0
        assert mean == pytest.approx(expected)
    assert region_means(values, np.zeros_like(values), boxes).tolist() == [0.0] * len(boxes)


def test_the_best_regions_at_most_per_image_each():
    scores = np.array([0.9, 0.95, 0.85, 0.2, 0.1, np.nan, 0.5])
    images = np.array([0, 0, 0, 1, 1, 2, 2])
    assert select_regions(scores, images, 4, per_image=2).tolist() == [5, 1, 0, 6]
    assert select_regions(scores, images, 10, per_image=1).tolist() == [5, 1, 3]
    assert select_regions(scores, images, 0, per_image=2).tolist() == []


def test_random_regions_are_seeded_and_capped():
    images = np.repeat(np.arange(5), 6)
    a = select_regions(None, images, 8, per_image=2, rng=3)
    assert a.tolist() == select_regions(None, images, 8, per_image=2, rng=3).tolist()
    assert len(a) == 8 and max(np.bincount(images[a])) <= 2
    assert a.tolist() != select_regions(None, images, 8, per_image=2, rng=4).tolist()


def test_each_group_fills_its_quota_first():
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.05])
    images = np.array([0, 1, 2, 3, 4])
    groups = np.array(["a", "a", "a", "b", "b"])
    picked = select_regions(scores, images, 3, groups=groups, quotas={"a": 1, "b": 2})
    assert picked.tolist() == [0, 3, 4]


def test_typical_regions_cover_the_uncovered_clusters_first():
    x, cluster = clusters([30, 20, 10])
    images = np.arange(len(x))  # one region per image: no cap at work
    assert sorted(cluster[typical_regions(x, images, 3, rng=0)]) == [0, 1, 2]
    covered = x[cluster == 0][:1] + 0.01  # the largest cluster is labeled already
    picked = typical_regions(x, images, 2, centers=covered, rng=0)
    assert sorted(cluster[picked]) == [1, 2]
    again = typical_regions(x, images, 2, centers=covered, rng=0)
    assert picked.tolist() == again.tolist()


def test_typical_regions_keep_the_cap_per_image_and_each_group_quota():
    x, cluster = clusters([12, 12, 12])
    images = np.arange(len(x)) // 12  # each cluster one image: a cap of 2 binds
    picked = typical_regions(x, images, 6, per_image=2, rng=1)
    assert len(picked) == 6 and np.bincount(images[picked]).max() == 2
    groups = np.where(cluster == 2, "rare", "common")
    picked = typical_regions(
        x, np.arange(len(x)), 4, groups=groups, quotas={"common": 1, "rare": 3}, rng=1
    )
    assert sorted(groups[picked]) == ["common", "rare", "rare", "rare"]


def test_restrict_keeps_the_objects_touching_the_boxes_whole_and_nothing_else():
    mask = np.zeros((10, 10), int)
    mask[0:3, 0:3] = 1  # inside the first box
    mask[3:7, 3:9] = 2  # crosses the first box's edge: kept whole
    mask[8:10, 8:10] = 3  # elsewhere: dropped
    known = np.ones((10, 10), bool)
    known[9, 0] = False  # unknown stays unknown, even inside a box
    kept, k = restrict(mask, known, [(0, 0, 5, 5), (8, 0, 2, 2)])
    assert np.unique(kept).tolist() == [0, 1, 2]
    assert (kept == 2).sum() == (mask == 2).sum()
    expected = np.zeros((10, 10), bool)
    expected[0:5, 0:5] = True
    expected[8:10, 0:2] = True
    expected |= kept > 0
    expected[9, 0] = False
    assert (k == expected).all()
    assert not k[8:10, 8:10].any()  # the dropped object's pixels are unknown, not background
    empty, none = restrict(mask, known, [])
    assert not empty.any() and not none.any()
