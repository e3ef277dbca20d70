"""PReLU: learned slope per channel (last axis), gradients, PyTorch parity."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.activations.prelu import PReLU
from dlcore.gradcheck import away_from_kinks, check_layer, reference_error

SHAPES = [(4, 5), (2, 3, 3, 2), (3, 2, 2, 4)]


def built(x_shape, seed=0):
    layer = PReLU()
    layer.build(x_shape[1:], np.random.default_rng(seed), dtype=np.float64)
    # Distinct slopes per channel, so a channel mix-up would show.
    layer.params["alpha"][...] = np.random.default_rng(seed).uniform(0.05, 0.6, x_shape[-1])
    return layer


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("x_shape", SHAPES)
def test_gradients_match_centred_differences(x_shape, training):
    x = away_from_kinks(np.random.default_rng(7).standard_normal(x_shape))
    errors = check_layer(built(x_shape), x, training=training)
    assert set(errors) == {"x", "alpha"}
    assert max(errors.values()) < 1e-7, errors


def test_one_slope_per_channel_initialized_to_0_25():
    layer = PReLU()
    layer.build((3, 3, 5), np.random.default_rng(0))
    np.testing.assert_array_equal(layer.params["alpha"], np.full(5, 0.25, dtype=np.float32))
    assert layer.infer((3, 3, 5)).params == 5
    assert PReLU.regularized == ()


@pytest.mark.torch
@pytest.mark.parametrize("x_shape", SHAPES)
def test_matches_pytorch_in_float64(x_shape):
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(3)
    x, dout = away_from_kinks(rng.standard_normal(x_shape)), rng.standard_normal(x_shape)
    layer = built(x_shape)
    out = layer.forward(x)
    dx = layer.backward(dout)
    # torch's channel is axis 1: move our last axis there for images.
    to_torch = (lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2))) if x.ndim == 4 else (lambda a: a)
    tx = torch.tensor(to_torch(x), requires_grad=True)
    tw = torch.tensor(layer.params["alpha"].copy(), requires_grad=True)
    tout = F.prelu(tx, tw)
    tout.backward(torch.tensor(to_torch(dout)))
    assert reference_error(to_torch(out), tout.detach().numpy()) < 1e-10
    assert reference_error(to_torch(dx), tx.grad.numpy()) < 1e-10
    assert reference_error(layer.grads["alpha"], tw.grad.numpy()) < 1e-10


@pytest.mark.parametrize("alpha", [1e-4, 1e-7, 0.25, 3.0])
def test_float32_is_within_float32_rounding_of_float64_for_small_slopes(alpha):
    """slope is exactly 1 or alpha: float32 out and dx are the float64 ones rounded once."""
    from dlcore.activations.prelu import prelu_backward, prelu_forward

    rng = np.random.default_rng(0)
    x32 = rng.standard_normal((64, 5)).astype(np.float32)
    dout32 = rng.standard_normal((64, 5)).astype(np.float32)
    a32 = np.full(5, alpha, dtype=np.float32)
    out32, cache32 = prelu_forward(x32, a32)
    out64, cache64 = prelu_forward(x32.astype(np.float64), a32.astype(np.float64))
    dx32, dalpha32 = prelu_backward(dout32, cache32)
    dx64, dalpha64 = prelu_backward(dout32.astype(np.float64), cache64)
    half_ulp = np.finfo(np.float32).eps / 2
    for got, want in ((out32, out64), (dx32, dx64)):
        assert got.dtype == np.float32
        assert np.max(np.abs(got - want) / np.maximum(np.abs(want), np.finfo(np.float32).tiny)) <= half_ulp
    # dalpha sums 64 products: a few roundings, not the 1.7e-4 of the old slope.
    assert np.max(np.abs(dalpha32 - dalpha64) / np.abs(dalpha64)) < 1e-6
