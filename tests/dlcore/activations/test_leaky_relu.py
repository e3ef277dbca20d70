"""Leaky ReLU: gradients away from the kink, alpha, PyTorch parity, configuration errors."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.activations.leaky_relu import LeakyReLU
from dlcore.errors import ConfigError
from dlcore.gradcheck import away_from_kinks, check_layer, reference_error

SHAPES = [(4, 5), (2, 3, 3, 2), (1, 7)]


@pytest.mark.parametrize("alpha", [0.01, 0.3])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("x_shape", SHAPES)
def test_gradients_match_centred_differences(x_shape, training, alpha):
    x = away_from_kinks(np.random.default_rng(7).standard_normal(x_shape))
    assert check_layer(LeakyReLU(alpha=alpha), x, training=training)["x"] < 1e-7


def test_default_alpha_is_0_01():
    assert LeakyReLU().config.alpha == 0.01
    np.testing.assert_allclose(LeakyReLU().forward(np.array([[-3.0, 3.0]])), [[-0.03, 3.0]])


@pytest.mark.parametrize("alpha", [-0.1, 1.0])
def test_bad_alpha_is_a_config_error(alpha):
    with pytest.raises(ConfigError) as info:
        LeakyReLU(alpha=alpha)
    assert info.value.field == "alpha" and "leaky_relu" in info.value.message


@pytest.mark.torch
@pytest.mark.parametrize("alpha", [0.01, 0.2])
@pytest.mark.parametrize("x_shape", SHAPES)
def test_matches_pytorch_in_float64(x_shape, alpha):
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(3)
    x, dout = away_from_kinks(rng.standard_normal(x_shape)), rng.standard_normal(x_shape)
    layer = LeakyReLU(alpha=alpha)
    out = layer.forward(x)
    dx = layer.backward(dout)
    tx = torch.tensor(x, requires_grad=True)
    tout = F.leaky_relu(tx, negative_slope=alpha)
    tout.backward(torch.tensor(dout))
    assert reference_error(out, tout.detach().numpy()) < 1e-10
    assert reference_error(dx, tx.grad.numpy()) < 1e-10
