"""ELU: gradients away from the kink, no overflow, PyTorch parity, configuration errors."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.activations.elu import ELU
from dlcore.errors import ConfigError
from dlcore.gradcheck import away_from_kinks, check_layer, reference_error

SHAPES = [(4, 5), (2, 3, 3, 2), (1, 7)]


@pytest.mark.parametrize("alpha", [1.0, 0.4])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("x_shape", SHAPES)
def test_gradients_match_centred_differences(x_shape, training, alpha):
    x = away_from_kinks(np.random.default_rng(7).standard_normal(x_shape) * 2)
    assert check_layer(ELU(alpha=alpha), x, training=training)["x"] < 1e-7


def test_large_inputs_do_not_overflow_and_saturate_at_minus_alpha():
    x = np.array([[-800.0, 800.0]])
    with np.errstate(over="raise"):
        out = ELU(alpha=0.5).forward(x)
    np.testing.assert_allclose(out, [[-0.5, 800.0]])


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_bad_alpha_is_a_config_error(alpha):
    with pytest.raises(ConfigError) as info:
        ELU(alpha=alpha)
    assert info.value.field == "alpha" and "elu" in info.value.message


@pytest.mark.torch
@pytest.mark.parametrize("alpha", [1.0, 0.4])
@pytest.mark.parametrize("x_shape", SHAPES)
def test_matches_pytorch_in_float64(x_shape, alpha):
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(3)
    x, dout = away_from_kinks(rng.standard_normal(x_shape) * 2), rng.standard_normal(x_shape)
    layer = ELU(alpha=alpha)
    out = layer.forward(x)
    dx = layer.backward(dout)
    tx = torch.tensor(x, requires_grad=True)
    tout = F.elu(tx, alpha=alpha)
    tout.backward(torch.tensor(dout))
    assert reference_error(out, tout.detach().numpy()) < 1e-10
    assert reference_error(dx, tx.grad.numpy()) < 1e-10
