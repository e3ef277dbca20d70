"""ReLU: gradients away from the kink, the mask, PyTorch parity."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.activations.relu import ReLU
from dlcore.gradcheck import away_from_kinks, check_layer, reference_error

SHAPES = [(4, 5), (2, 3, 3, 2), (1, 7)]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("x_shape", SHAPES)
def test_gradients_match_centred_differences(x_shape, training):
    x = away_from_kinks(np.random.default_rng(7).standard_normal(x_shape))
    assert check_layer(ReLU(), x, training=training)["x"] < 1e-7


def test_output_and_gradient_follow_the_sign():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    layer = ReLU()
    np.testing.assert_array_equal(layer.forward(x), [[0, 0, 0, 0.5, 2.0]])
    np.testing.assert_array_equal(layer.backward(np.full_like(x, 3.0)), [[0, 0, 0, 3.0, 3.0]])


@pytest.mark.torch
@pytest.mark.parametrize("x_shape", SHAPES)
def test_matches_pytorch_in_float64(x_shape):
    import torch

    rng = np.random.default_rng(3)
    x, dout = away_from_kinks(rng.standard_normal(x_shape)), rng.standard_normal(x_shape)
    layer = ReLU()
    out = layer.forward(x)
    dx = layer.backward(dout)
    tx = torch.tensor(x, requires_grad=True)
    tout = torch.relu(tx)
    tout.backward(torch.tensor(dout))
    assert reference_error(out, tout.detach().numpy()) < 1e-10
    assert reference_error(dx, tx.grad.numpy()) < 1e-10
