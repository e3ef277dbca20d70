"""gelu, silu, mish: gradients in float64 and parity with PyTorch's own operations."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.gradcheck import check_layer, rel_error
from dlcore_extras.activations.gelu import GELU
from dlcore_extras.activations.mish import Mish
from dlcore_extras.activations.silu import SiLU

SHAPES = [(4, 5), (2, 3, 3, 2)]
ACTIVATIONS = [GELU, SiLU, Mish]


def torch_reference(cls, tx):
    import torch.nn.functional as F

    return {
        "gelu": lambda t: F.gelu(t, approximate="tanh"),
        "silu": F.silu,
        "mish": F.mish,
    }[cls.name](tx)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("x_shape", SHAPES)
@pytest.mark.parametrize("cls", ACTIVATIONS, ids=lambda c: c.name)
def test_gradients_match_centred_differences(cls, x_shape, training):
    x = np.random.default_rng(7).standard_normal(x_shape) * 3
    assert check_layer(cls(), x, training=training)["x"] < 1e-7


@pytest.mark.parametrize("cls", ACTIVATIONS, ids=lambda c: c.name)
def test_no_overflow_for_large_inputs(cls):
    x = np.array([[-700.0, -40.0, 40.0, 700.0]])
    with np.errstate(over="raise", invalid="raise"):
        layer = cls()
        out = layer.forward(x)
        dx = layer.backward(np.ones_like(x))
    # All three tend to 0 for x -> -inf and to x for x -> +inf, with slopes 0 and 1.
    np.testing.assert_allclose(out[0, [0, 3]], [0.0, 700.0], atol=1e-12)
    np.testing.assert_allclose(dx[0, [0, 3]], [0.0, 1.0], atol=1e-12)


@pytest.mark.parametrize("cls", ACTIVATIONS, ids=lambda c: c.name)
def test_float32_in_float32_out(cls):
    layer = cls()
    out = layer.forward(np.linspace(-3, 3, 12, dtype=np.float32).reshape(2, 6))
    assert out.dtype == layer.backward(np.ones_like(out)).dtype == np.float32


@pytest.mark.torch
@pytest.mark.parametrize("x_shape", SHAPES)
@pytest.mark.parametrize("cls", ACTIVATIONS, ids=lambda c: c.name)
def test_matches_pytorch_in_float64(cls, x_shape):
    import torch

    rng = np.random.default_rng(3)
    x, dout = rng.standard_normal(x_shape) * 3, rng.standard_normal(x_shape)
    layer = cls()
    out = layer.forward(x)
    dx = layer.backward(dout)
    tx = torch.tensor(x, requires_grad=True)
    tout = torch_reference(cls, tx)
    tout.backward(torch.tensor(dout))
    assert rel_error(out, tout.detach().numpy()) < 1e-10
    assert rel_error(dx, tx.grad.numpy()) < 1e-10
