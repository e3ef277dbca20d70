"""Sigmoid: gradients, stability at large |x|, PyTorch parity."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.activations.sigmoid import Sigmoid
from dlcore.gradcheck import check_layer, reference_error

SHAPES = [(4, 5), (2, 3, 3, 2), (1, 7)]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("x_shape", SHAPES)
def test_gradients_match_centred_differences(x_shape, training):
    x = np.random.default_rng(7).standard_normal(x_shape) * 3
    assert check_layer(Sigmoid(), x, training=training)["x"] < 1e-7


def test_stable_for_large_inputs():
    x = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]])
    with np.errstate(over="raise"):
        out = Sigmoid().forward(x)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0, [0, 2, 4]], [0.0, 0.5, 1.0])


def test_keeps_float32():
    assert Sigmoid().forward(np.ones((2, 3), dtype=np.float32)).dtype == np.float32


@pytest.mark.torch
@pytest.mark.parametrize("x_shape", SHAPES)
def test_matches_pytorch_in_float64(x_shape):
    import torch

    rng = np.random.default_rng(3)
    x, dout = rng.standard_normal(x_shape) * 4, rng.standard_normal(x_shape)
    layer = Sigmoid()
    out = layer.forward(x)
    dx = layer.backward(dout)
    tx = torch.tensor(x, requires_grad=True)
    tout = torch.sigmoid(tx)
    tout.backward(torch.tensor(dout))
    assert reference_error(out, tout.detach().numpy()) < 1e-10
    assert reference_error(dx, tx.grad.numpy()) < 1e-10
