"""Affine: gradient checks, PyTorch parity, shape inference, configuration errors."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.gradcheck import check_layer, reference_error
from dlcore.layers.affine import Affine


def gaussian_init(shape, fan_in, fan_out, rng, dtype=np.float32):
    """A stand-in initializer with the Initializer call signature."""
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)


def built(units, in_shape, dtype=np.float64, seed=0):
    layer = Affine(units=units)
    layer.build(in_shape, np.random.default_rng(seed), dtype, gaussian_init)
    # Non-zero biases so that their effect is visible in every check.
    layer.params["b"][...] = np.random.default_rng(seed + 7).standard_normal(units)
    return layer


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("in_shape", [(5,), (1,), (3, 2, 4), (4, 4, 1)])
@pytest.mark.parametrize("units", [1, 3])
def test_gradients_match_centred_differences(in_shape, units, training):
    layer = built(units, in_shape)
    x = np.random.default_rng(1).standard_normal((3,) + in_shape)
    errors = check_layer(layer, x, training=training)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.torch
@pytest.mark.parametrize("in_shape", [(7,), (3, 2, 4)])
def test_matches_torch_linear(in_shape):
    torch = pytest.importorskip("torch")
    layer = built(5, in_shape)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4,) + in_shape)
    dout = rng.standard_normal((4, 5))
    out = layer.forward(x, training=True)
    dx = layer.backward(dout)

    # Our flattening is C order over the internal layout, so a reshape gives torch the same features.
    xt = torch.tensor(x.reshape(4, -1), requires_grad=True)
    wt = torch.tensor(layer.params["W"].T.copy(), requires_grad=True)  # torch: (out, in)
    bt = torch.tensor(layer.params["b"], requires_grad=True)
    outt = torch.nn.functional.linear(xt, wt, bt)
    outt.backward(torch.tensor(dout))

    assert reference_error(out, outt.detach().numpy()) < 1e-10
    assert reference_error(dx.reshape(4, -1), xt.grad.numpy()) < 1e-10
    assert reference_error(layer.grads["W"], wt.grad.numpy().T) < 1e-10
    assert reference_error(layer.grads["b"], bt.grad.numpy()) < 1e-10


def test_shape_inference_counts_params_and_flops():
    info = Affine(units=10).infer((4, 4, 3))
    d = 4 * 4 * 3
    assert info.out_shape == (10,)
    assert info.params == d * 10 + 10
    assert info.flops == 2 * d * 10 + 10
    layer = built(10, (4, 4, 3))
    assert sum(p.size for p in layer.params.values()) == info.params


@pytest.mark.parametrize("units", [0, -3])
def test_rejects_non_positive_units(units):
    with pytest.raises(ConfigError) as exc:
        Affine(units=units)
    assert exc.value.field == "units"
    assert "affine" in str(exc.value)


def test_rejects_unknown_parameter():
    with pytest.raises(ConfigError) as exc:
        Affine(units=3, size=2)
    assert exc.value.field == "size"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_dtype_and_never_modifies_input(dtype):
    layer = built(3, (2, 2, 2), dtype=dtype)
    x = np.random.default_rng(0).standard_normal((4, 2, 2, 2)).astype(dtype)
    x_before = x.copy()
    out = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(out))
    assert out.dtype == dtype and dx.dtype == dtype
    assert layer.grads["W"].dtype == dtype and layer.grads["b"].dtype == dtype
    assert dx.shape == x.shape
    np.testing.assert_array_equal(x, x_before)


def test_skips_input_gradient_when_not_needed():
    layer = built(3, (4,))
    layer.need_input_grad = False
    x = np.random.default_rng(0).standard_normal((2, 4))
    layer.forward(x, training=True)
    assert layer.backward(np.ones((2, 3))) is None
    np.testing.assert_allclose(layer.grads["b"], [2.0, 2.0, 2.0])
    np.testing.assert_allclose(layer.grads["W"], np.outer(x.sum(0), np.ones(3)))


def test_build_passes_fans_to_initializer_and_zeroes_biases():
    seen = {}

    def recording_init(shape, fan_in, fan_out, rng, dtype=np.float32):
        seen.update(shape=shape, fan_in=fan_in, fan_out=fan_out)
        return np.ones(shape, dtype=dtype)

    layer = Affine(units=6)
    layer.build((2, 3, 4), np.random.default_rng(0), np.float32, recording_init)
    assert seen == {"shape": (24, 6), "fan_in": 24, "fan_out": 6}
    assert layer.params["W"].dtype == np.float32
    np.testing.assert_array_equal(layer.params["b"], np.zeros(6, dtype=np.float32))


def test_default_initializer_is_he():
    pytest.importorskip("dlcore.initializers.he")
    layer = Affine(units=50)
    layer.build((400,), np.random.default_rng(0), np.float64)
    std = layer.params["W"].std()
    assert abs(std - np.sqrt(2 / 400)) < 0.1 * np.sqrt(2 / 400)


def test_hyperparameters_round_trip():
    layer = Affine(units=7)
    assert Affine(layer.hyperparameters()).config == layer.config
