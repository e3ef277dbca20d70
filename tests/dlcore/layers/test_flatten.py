"""Flatten: NHWC order, gradients, shapes."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.gradcheck import check_layer
from dlcore.layers.affine import Affine
from dlcore.layers.flatten import Flatten


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("in_shape", [(3, 4, 2), (1, 1, 5), (6,)])
def test_shape_and_gradient(in_shape, training):
    layer = Flatten()
    info = layer.infer(in_shape)
    assert info.out_shape == (int(np.prod(in_shape)),) and info.params == 0
    layer.build(in_shape, np.random.default_rng(0), np.float64)
    x = np.random.default_rng(1).standard_normal((2,) + in_shape)
    out = layer.forward(x)
    assert out.shape == (2,) + info.out_shape
    errors = check_layer(layer, x, training=training)
    assert errors["x"] < 1e-7


def test_order_is_nhwc():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    out = Flatten().forward(x)
    h, w, c = 1, 2, 3
    np.testing.assert_array_equal(out[:, (h * 4 + w) * 5 + c], x[:, h, w, c])


def test_backward_restores_the_input_shape():
    layer = Flatten()
    x = np.zeros((2, 3, 4, 5), dtype=np.float32)
    layer.forward(x)
    dout = np.arange(120, dtype=np.float32).reshape(2, 60)
    dx = layer.backward(dout)
    assert dx.shape == x.shape and dx.dtype == np.float32
    np.testing.assert_array_equal(dx.reshape(2, -1), dout)


def test_flatten_then_affine_equals_affine_on_the_image():
    rng = np.random.default_rng(0)

    def init(shape, fan_in, fan_out, rng, dtype=np.float64):
        return rng.standard_normal(shape).astype(dtype)

    a = Affine(units=3)
    a.build((60,), np.random.default_rng(1), np.float64, init)
    b = Affine(units=3)
    b.build((3, 4, 5), np.random.default_rng(1), np.float64, init)
    x = rng.standard_normal((2, 3, 4, 5))
    np.testing.assert_array_equal(a.forward(Flatten().forward(x)), b.forward(x))
