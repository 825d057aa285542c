import numpy as np
import pytest

from connectors.simulated import PROFILES, lead_time, noisy_class, noisy_mask, profile_named
from loop.errors import ConfigError
from loop.synthetic import synthetic_nuclei


def iou_matched(a, b):
    """Mean over objects of ``a`` of the best IoU with an object of ``b``."""
    scores = []
    for v in np.unique(a)[1:]:
        region = a == v
        best = 0.0
        for w in np.unique(b[region]):
            if w:
                other = b == w
                best = max(best, (region & other).sum() / (region | other).sum())
        scores.append(best)
    return float(np.mean(scores))


@pytest.fixture
def truth():
    return synthetic_nuclei((160, 160), 30, radius=(6, 11), rng=5)[1]


def test_perfect_annotator_is_exact(truth):
    out = noisy_mask(truth, PROFILES["perfect"], np.random.default_rng(0))
    assert iou_matched(truth, out) == 1.0 and out.max() == truth.max()


def test_noise_is_seeded(truth):
    a = noisy_mask(truth, PROFILES["sloppy"], np.random.default_rng(1))
    b = noisy_mask(truth, PROFILES["sloppy"], np.random.default_rng(1))
    assert np.array_equal(a, b)


def test_noisier_profiles_agree_less_with_truth(truth):
    scores = {
        name: np.mean(
            [
                iou_matched(truth, noisy_mask(truth, PROFILES[name], np.random.default_rng(s)))
                for s in range(4)
            ]
        )
        for name in ("careful", "average", "sloppy")
    }
    assert scores["careful"] > scores["average"] > scores["sloppy"]
    assert scores["careful"] > 0.85 and scores["sloppy"] < 0.8


def test_flip_rate():
    rng = np.random.default_rng(0)
    flips = sum(noisy_class("A", "ABCD", PROFILES["sloppy"], rng) != "A" for _ in range(2000))
    assert 0.2 < flips / 2000 < 0.3
    assert noisy_class("A", ["A"], PROFILES["sloppy"], rng) == "A"


def test_lead_time_grows_with_objects():
    rng = np.random.default_rng(0)
    few = np.median([lead_time(PROFILES["average"], 2, rng) for _ in range(200)])
    many = np.median([lead_time(PROFILES["average"], 40, rng) for _ in range(200)])
    assert many > 3 * few


def test_unknown_profile():
    with pytest.raises(ConfigError, match="unknown noise profile 'messy'; choose one of perfect"):
        profile_named("messy")


def test_empty_truth():
    assert (
        noisy_mask(np.zeros((5, 5), int), PROFILES["sloppy"], np.random.default_rng(0)).max() == 0
    )
