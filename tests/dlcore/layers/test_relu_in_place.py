"""A relu after a layer with a fresh, uncached output writes into that output (one array fewer),
and the stack computes what it computed before: same values, gradients by centred differences."""

from __future__ import annotations

import numpy as np

from dlcore.gradcheck import check_layer
from dlcore.layers.sequential import Sequential

CONV = {"type": "conv2d", "filters": 3, "size": 3, "pad": 1}


def _stack(layers, dtype=np.float64):
    net = Sequential({"layers": layers})
    net.build((5, 5, 2), np.random.default_rng(0), dtype)
    return net


def test_relu_overwrites_only_an_output_no_one_else_holds():
    net = _stack([{"type": "relu"}, CONV, {"type": "relu"}, {"type": "dropout", "p": 0.5}, {"type": "relu"}])
    assert [getattr(c, "input_is_scratch", None) for c in net.children] == [False, None, True, None, False]
    block = _stack([{"type": "residual", "layers": [dict(CONV, filters=2)]}, {"type": "relu"}])
    assert block.children[1].input_is_scratch is False  # a container's output: not known to be free


def test_in_place_relu_gives_the_same_output_and_gradients_and_leaves_the_input_alone():
    x = np.random.default_rng(1).standard_normal((4, 5, 5, 2))
    kept = x.copy()
    net = _stack([CONV, {"type": "relu"}, {"type": "flatten"}, {"type": "affine", "units": 3}])
    conv, relu = net.children[0], net.children[1]
    out = net.forward(x, training=True)
    by_hand = np.maximum(conv.forward(x, training=True), 0).reshape(4, -1) @ net.children[3].params["W"]
    np.testing.assert_allclose(out, by_hand + net.children[3].params["b"], rtol=1e-12)
    np.testing.assert_array_equal(x, kept)
    assert relu.input_is_scratch
    errors = check_layer(net, x, training=True)
    assert max(errors.values()) < 1e-7, errors
