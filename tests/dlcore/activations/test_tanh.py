"""Tanh: gradients and PyTorch parity."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.activations.tanh import Tanh
from dlcore.gradcheck import check_layer, reference_error

SHAPES = [(4, 5), (2, 3, 3, 2), (1, 7)]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("x_shape", SHAPES)
def test_gradients_match_centred_differences(x_shape, training):
    x = np.random.default_rng(7).standard_normal(x_shape) * 2
    assert check_layer(Tanh(), x, training=training)["x"] < 1e-7


def test_is_odd_and_bounded():
    x = np.linspace(-30, 30, 61).reshape(1, -1)
    out = Tanh().forward(x)
    np.testing.assert_allclose(out, -Tanh().forward(-x))
    assert np.all(np.abs(out) <= 1)


@pytest.mark.torch
@pytest.mark.parametrize("x_shape", SHAPES)
def test_matches_pytorch_in_float64(x_shape):
    import torch

    rng = np.random.default_rng(3)
    x, dout = rng.standard_normal(x_shape) * 3, rng.standard_normal(x_shape)
    layer = Tanh()
    out = layer.forward(x)
    dx = layer.backward(dout)
    tx = torch.tensor(x, requires_grad=True)
    tout = torch.tanh(tx)
    tout.backward(torch.tensor(dout))
    assert reference_error(out, tout.detach().numpy()) < 1e-10
    assert reference_error(dx, tx.grad.numpy()) < 1e-10
