"""Dropout: inverted scaling, drop fraction, expectation, modes, gradients, configuration errors."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.gradcheck import check_layer
from dlcore.layers.dropout import Dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_drops_a_fraction_p_and_keeps_the_expectation(p):
    layer = Dropout(p=p)
    x = np.full((400, 500), 3.0)
    out = layer.forward(x, training=True, rng=np.random.default_rng(0))
    dropped = np.mean(out == 0)
    # 200,000 Bernoulli draws: the standard error of the fraction is < 0.0012.
    assert abs(dropped - p) < 0.005
    np.testing.assert_allclose(out[out != 0], 3.0 / (1 - p))  # survivors scaled by 1 / (1 - p)
    assert abs(out.mean() - 3.0) < 0.03


def test_evaluation_is_the_identity_and_needs_no_rng():
    layer = Dropout(p=0.5)
    x = np.random.default_rng(0).standard_normal((4, 3, 3, 2))
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    dout = np.random.default_rng(1).standard_normal(x.shape)
    np.testing.assert_array_equal(layer.backward(dout), dout)


def test_backward_uses_the_same_mask():
    layer = Dropout(p=0.4)
    x = np.random.default_rng(0).standard_normal((6, 5)) + 10  # never exactly zero
    out = layer.forward(x, training=True, rng=np.random.default_rng(1))
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(dx == 0, out == 0)
    np.testing.assert_allclose(dx[dx != 0], 1 / 0.6)


def test_same_seed_same_mask_and_input_unchanged():
    layer = Dropout(p=0.5)
    x = np.random.default_rng(0).standard_normal((8, 8))
    keep = x.copy()
    a = layer.forward(x, training=True, rng=np.random.default_rng(3))
    b = layer.forward(x, training=True, rng=np.random.default_rng(3))
    c = layer.forward(x, training=True, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(x, keep)


def test_training_without_rng_is_a_clear_error():
    with pytest.raises(ValueError, match="rng"):
        Dropout().forward(np.ones((2, 2)), training=True, rng=None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_the_dtype(dtype):
    x = np.ones((3, 4), dtype=dtype)
    out = Dropout(p=0.3).forward(x, training=True, rng=np.random.default_rng(0))
    assert out.dtype == dtype


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("x_shape", [(4, 6), (2, 3, 3, 2)])
def test_gradients_match_centred_differences(x_shape, training):
    layer = Dropout(p=0.3)
    layer.build(x_shape[1:], np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(7).standard_normal(x_shape)
    errors = check_layer(layer, x, training=training)
    assert errors["x"] < 1e-7, errors


def test_flags_and_shape_inference():
    assert Dropout.stochastic and Dropout.mode_dependent
    info = Dropout().infer((3, 4, 5))
    assert info.out_shape == (3, 4, 5) and info.params == 0


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_p_outside_zero_one_is_a_config_error(p):
    with pytest.raises(ConfigError) as info:
        Dropout(p=p)
    assert info.value.field == "p" and "dropout" in info.value.message
