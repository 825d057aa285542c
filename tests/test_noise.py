import numpy as np
import pytest

from connectors.simulated import noisy_mask
from loop.data.synthetic import synthetic_nuclei
from loop.errors import ConfigError
from loop.noise import PROFILES, NoiseProfile, profile_named


def test_built_in_profiles_and_the_study_s_own():
    mine = NoiseProfile(jitter=(3, 4), miss=0.5)
    assert profile_named("sloppy") is PROFILES["sloppy"]
    assert profile_named("mine", {"mine": mine}) is mine
    # a study's table named after a built-in profile replaces it
    assert profile_named("sloppy", {"sloppy": mine}) is mine
    assert profile_named("careful", {"sloppy": mine}) is PROFILES["careful"]


def test_a_profile_of_one_s_own_is_used_by_the_noise_model():
    truth = synthetic_nuclei((128, 128), 20, radius=(6, 9), rng=3)[1]
    misses = NoiseProfile(miss=1.0, miss_small=1.0)
    assert noisy_mask(truth, misses, np.random.default_rng(0)).max() == 0
    assert noisy_mask(truth, NoiseProfile(), np.random.default_rng(0)).max() == truth.max()


def test_unknown_profile_names_the_known_ones_and_the_table_to_write():
    with pytest.raises(ConfigError, match="unknown noise profile 'messy'; choose one of perfect"):
        profile_named("messy")
    with pytest.raises(
        ConfigError, match=r"careful, average, sloppy, mine, or define it in loop.toml as \[noise"
    ):
        profile_named("messy", {"mine": NoiseProfile()})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"jitter": (2, 1)}, "jitter = [2, 1]: give [lo, hi]"),
        ({"jitter": (1,)}, "jitter = [1]: give [lo, hi]"),
        ({"jitter": (-1, 1)}, "jitter = [-1, 1]"),
        ({"miss": 1.5}, "miss = 1.5: give a probability in 0..1"),
        ({"flip": -0.1}, "flip = -0.1: give a probability"),
        ({"false_positive": -1.0}, "false_positive = -1.0: give a value from 0.0 to 3600.0"),
        ({"seconds_per_object": -2.0}, "seconds_per_object = -2.0"),
    ],
)
def test_bad_noise_levels_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        NoiseProfile(**kwargs)
