"""Consensus: majority vote of classes, instance masks fused by pixel majority or STAPLE."""

import numpy as np
import pytest

from connectors.simulated import noisy_mask
from loop.core.agreement import object_f1
from loop.core.fusion import consensus_mask, majority_vote, staple
from loop.data.synthetic import synthetic_nuclei
from loop.noise import PROFILES


def square(shape=(30, 30), top=5, left=5, size=10, label=1):
    m = np.zeros(shape, np.int32)
    m[top : top + size, left : left + size] = label
    return m


def test_majority_vote():
    assert majority_vote(["a", "b", "a"]) == "a"
    assert majority_vote(["a", "b"]) is None  # a tie goes to adjudication
    assert majority_vote(["b", "a"], tie="first") == "b"
    assert majority_vote([None, None]) is None


def test_identical_and_empty_masks_and_a_size_mismatch():
    _, mask = synthetic_nuclei((96, 96), 15, rng=0)
    assert np.array_equal(consensus_mask([mask, mask, mask]) > 0, mask > 0)
    empty = np.zeros((10, 10), np.int32)
    assert consensus_mask([empty, empty]).max() == 0
    with pytest.raises(ValueError, match="differ in shape"):
        consensus_mask([square(), square((31, 30))])


def test_one_annotator_is_its_own_consensus():
    _, mask = synthetic_nuclei((64, 64), 6, rng=2)
    out = consensus_mask([mask])
    assert object_f1(mask, out)["f1"][0.95] == 1.0


@pytest.mark.parametrize("method", ["majority", "staple"])
def test_consensus_beats_the_mean_single_annotator(method):
    single, fused = [], []
    for seed in range(6):
        _, truth = synthetic_nuclei((160, 160), 40, radius=(5, 9), rng=seed)
        anns = [
            noisy_mask(truth, PROFILES[p], np.random.default_rng([seed, i]))
            for i, p in enumerate(["careful", "average", "sloppy"])
        ]
        single.append(np.mean([object_f1(truth, a)["f1_50"] for a in anns]))
        fused.append(object_f1(truth, consensus_mask(anns, method=method))["f1_50"])
    assert np.mean(fused) > np.mean(single) + 0.05


def test_staple_downweights_a_bad_annotator():
    truth = square((40, 40), 5, 5, 20) > 0
    noise = np.random.default_rng(0).random((40, 40)) < 0.3
    good1, good2, bad = truth, truth, truth ^ noise
    posterior = staple([good1, good2, bad])
    assert np.array_equal(posterior >= 0.5, truth)
    with pytest.raises(ValueError, match="unknown consensus method 'mean'"):
        consensus_mask([truth.astype(int)], method="mean")
    with pytest.raises(ValueError, match="no annotation to fuse"):
        consensus_mask([])
