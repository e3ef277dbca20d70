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
