"""Preprocessors: statistics from the fit data only, blank pixels unscaled, inputs kept."""

import numpy as np
import pytest

from dlcore.preprocessing.mean_image import MeanImage
from dlcore.preprocessing.per_channel_mean import PerChannelMean
from dlcore.preprocessing.std import Std, std_fit

ALL = [MeanImage, PerChannelMean, Std]


def images(seed, n=6, shift=0.0):
    """(N, C, H, W) images whose channels have different means and scales."""
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 3.0, 0.5])[None, :, None, None]
    offset = np.array([10.0, -2.0, 0.0])[None, :, None, None]
    return rng.standard_normal((n, 3, 4, 5)) * scale + offset + shift


def test_mean_image_uses_fitted_mean_on_other_data():
    train, test = images(0), images(1, n=4, shift=5.0)
    prep = MeanImage().fit(train)
    assert prep.state["mean"].shape == (3, 4, 5)
    np.testing.assert_allclose(prep.transform(train).mean(axis=0), 0, atol=1e-12)
    # Test data is centred by the training mean, not its own: the shift survives.
    np.testing.assert_allclose(prep.transform(test), test - train.mean(axis=0), rtol=1e-14)
    assert abs(prep.transform(test).mean() - 5.0) < 1.5


def test_per_channel_mean_keeps_one_mean_per_channel():
    train, test = images(2), images(3, n=4)
    prep = PerChannelMean().fit(train)
    assert prep.state["mean"].shape == (3,)
    np.testing.assert_allclose(prep.state["mean"], train.mean(axis=(0, 2, 3)), rtol=1e-14)
    np.testing.assert_allclose(prep.transform(train).mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(
        prep.transform(test), test - train.mean(axis=(0, 2, 3))[None, :, None, None], rtol=1e-14
    )


def test_per_channel_mean_on_vectors_is_per_feature():
    x = np.random.default_rng(4).standard_normal((10, 3)) + [1.0, 2.0, 3.0]
    prep = PerChannelMean().fit(x)
    np.testing.assert_allclose(prep.state["mean"], x.mean(axis=0), rtol=1e-14)


def test_std_divides_by_training_std_and_leaves_blank_pixels_unscaled():
    train = images(5, n=8)
    train[:, 1, 0, 0] = 7.0  # a pixel constant over the training split
    train[:, 2, 1, :] = 0.0  # a row blank in every training image
    test = images(6, n=3)
    prep = Std().fit(train)
    std = train.std(axis=0)
    blank = std < 1e-8
    assert blank.sum() == 6
    assert np.all(prep.state["std"][blank] == 1.0)
    out = prep.transform(test)
    np.testing.assert_array_equal(out[:, blank], test[:, blank])
    np.testing.assert_allclose(out[:, ~blank], test[:, ~blank] / std[~blank], rtol=1e-13)
    np.testing.assert_allclose(prep.transform(train).std(axis=0)[~blank], 1.0, rtol=1e-12)


def test_std_in_chunks_matches_numpy(monkeypatch):
    import dlcore.preprocessing.std as std_module

    monkeypatch.setattr(std_module, "_CHUNK", 3)  # several chunks, the last one partial
    x = np.random.default_rng(7).standard_normal((10, 4)) * [1.0, 10.0, 1e-3, 0.0] + 100.0
    expected = x.std(axis=0)
    expected[3] = 1.0
    np.testing.assert_allclose(std_fit(x), expected, rtol=1e-10)


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inputs_untouched_and_dtype_kept(cls, dtype):
    train, test = images(8).astype(dtype), images(9, n=3).astype(dtype)
    train_copy, test_copy = train.copy(), test.copy()
    prep = cls().fit(train)
    out = prep.transform(test)
    np.testing.assert_array_equal(train, train_copy)
    np.testing.assert_array_equal(test, test_copy)
    assert out is not test and out.dtype == dtype and out.shape == test.shape
    assert all(isinstance(v, np.ndarray) for v in prep.state.values())


@pytest.mark.parametrize("cls", ALL)
def test_integer_images_become_float32(cls):
    train = np.random.default_rng(10).integers(0, 256, size=(5, 3, 2, 2), dtype=np.uint8)
    out = cls().fit(train).transform(train)
    assert out.dtype == np.float32


@pytest.mark.parametrize("cls", ALL)
def test_refitting_replaces_the_statistics(cls):
    a, b = images(11), images(12, shift=3.0) * 2
    prep = cls().fit(a)
    prep.fit(b)
    fresh = cls().fit(b)
    for key in fresh.state:
        np.testing.assert_array_equal(prep.state[key], fresh.state[key])


@pytest.mark.parametrize("cls", ALL)
def test_transform_before_fit_and_wrong_shapes_are_errors(cls):
    with pytest.raises(RuntimeError, match="fit"):
        cls().transform(images(13))
    prep = cls().fit(images(13))
    with pytest.raises(ValueError, match=cls.name):
        prep.transform(np.zeros((2, 4, 4, 5)))
    with pytest.raises(ValueError, match=cls.name):
        cls().fit(np.zeros((2, 3, 4)))


@pytest.mark.parametrize("cls", ALL)
def test_examples_construct_and_round_trip(cls):
    for example in cls.examples:
        prep = cls(example)
        assert cls(prep.hyperparameters()).hyperparameters() == prep.hyperparameters()


@pytest.mark.parametrize("cls", ALL)
def test_fitting_on_no_samples_is_an_error(cls):
    with pytest.raises(ValueError, match="zero samples"):
        cls().fit(np.zeros((0, 3, 4, 4)))
