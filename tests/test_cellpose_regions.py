"""Per-region measures of a Cellpose network: the image-level measures, per region."""

import numpy as np
import pytest
from conftest import CPU, TINY

from loop.core.regions import grid
from loop.data.synthetic import synthetic_nuclei
from loop.models import cellpose_rank as rank
from loop.models import cellpose_regions as cr
from loop.models import cellpose_seg as cs


def test_a_region_over_the_whole_image_has_the_image_measures_and_regions_differ():
    net = cs.build_net(TINY.nbase, CPU, seed=0)
    image, _ = synthetic_nuclei((96, 80), 8, radius=(4, 7), rng=1)
    whole = np.array([[0, 0, 96, 80]])
    (one,), cells = cr.region_measures(net, [image], [whole]), grid(96, 80, 32)
    fast = rank.fast_measures(net, [image], config=TINY)[0].measures
    assert one[0].tolist() == pytest.approx([fast["flip"], fast["entropy"]], rel=1e-5)
    (per_region,) = cr.region_measures(net, [image], [cells])
    assert per_region.shape == (len(cells), len(cr.REGION_MEASURES))
    assert np.ptp(per_region[:, 0]) > 0  # the regions of one image are told apart
