"""The whole-image classifier: features, modAL learner, committee, files."""

import numpy as np
import pytest

from loop.config import AugmentConfig, ClassifierConfig
from loop.core.images import file_sha256
from loop.errors import ModelError
from loop.models import classifier as cl


def blobs(n, rng, bright):
    """Images whose class is their brightness and texture."""
    out = []
    for _ in range(n):
        base = rng.normal(bright, 0.05, (24, 24, 3)).clip(0, 1)
        out.append((base * 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def separable():
    rng = np.random.default_rng(0)
    images = blobs(15, rng, 0.2) + blobs(15, rng, 0.5) + blobs(15, rng, 0.8)
    y = ["dark"] * 15 + ["mid"] * 15 + ["bright"] * 15
    x = np.stack([cl.features(im, size=32) for im in images])
    return x, y


def test_features_fixed_length_any_dtype():
    rng = np.random.default_rng(0)
    a = cl.features(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    b = cl.features(rng.integers(0, 65535, (50, 20), dtype=np.uint16))
    c = cl.features(rng.random((64, 64, 4)).astype(np.float32))
    assert a.shape == c.shape and a.dtype == np.float32 and np.isfinite(b).all()


@pytest.mark.parametrize("estimator", ["logistic", "random-forest"])
def test_learns_separable_classes(separable, estimator):
    x, y = separable
    model = cl.train(
        x[::2], y[::2], config=ClassifierConfig(estimator=estimator), rng=np.random.default_rng(0)
    )
    assert np.mean(np.array(model.predict(x[1::2])) == np.array(y[1::2])) > 0.9
    proba = model.proba(x)
    assert proba.shape == (45, 3) and np.allclose(proba.sum(axis=1), 1)
    assert model.member_proba(x).shape == (5, 45, 3)


def test_modal_strategies_apply_to_the_learner(separable):
    from modAL.uncertainty import entropy_sampling

    from loop.core.strategies import entropy, least_confident, top_k

    x, y = separable
    model = cl.train(x[:30:3], y[:30:3], config=ClassifierConfig(), rng=np.random.default_rng(0))
    proba = model.learner.predict_proba(x)
    idx, _ = model.learner.query(x, n_instances=4)  # modAL's default: uncertainty_sampling
    assert set(idx) == set(top_k(least_confident(proba), 4))
    idx, _ = entropy_sampling(model.learner.estimator, x, n_instances=4)
    assert set(idx) == set(top_k(entropy(proba), 4))


def test_unseen_classes_get_zero_probability(separable):
    x, y = separable
    model = cl.train(
        x[:30],
        y[:30],
        config=ClassifierConfig(),
        rng=np.random.default_rng(0),
        classes=["bright", "dark", "mid", "rare"],
    )
    assert model.proba(x).shape == (45, 4) and np.all(model.proba(x)[:, 3] == 0)


def test_one_class_is_an_error(separable):
    x, _ = separable
    with pytest.raises(ModelError, match="a classifier needs at least two"):
        cl.train(x[:5], ["a"] * 5, config=ClassifierConfig(), rng=np.random.default_rng(0))


def test_augmented_keeps_shape_and_is_seeded():
    image = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    a = cl.augmented(image, np.random.default_rng(1), AugmentConfig(probability=1))
    b = cl.augmented(image, np.random.default_rng(1), AugmentConfig(probability=1))
    assert np.array_equal(a, b) and a.shape[-1] == 3 and sorted(a.shape[:2]) == [20, 30]


def test_save_and_checked_load(separable, tmp_path):
    x, y = separable
    model = cl.train(x, y, config=ClassifierConfig(committee=2), rng=np.random.default_rng(0))
    path = cl.save(model, tmp_path / "m.pkl")
    back = cl.load(path, file_sha256(path))
    assert back.predict(x) == model.predict(x)
    with pytest.raises(ModelError, match="refusing to unpickle"):
        cl.load(path, "0" * 64)
    with pytest.raises(ModelError, match="is missing"):
        cl.load(tmp_path / "gone.pkl", "0" * 64)


def test_bad_estimator_is_a_config_error():
    from loop.errors import ConfigError

    with pytest.raises(ConfigError, match="classifier.estimator"):
        ClassifierConfig(estimator="svm")
