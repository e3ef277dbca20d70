"""Batchnorm, relu, dropout and the residual sum split over the batch on dlcore's pool give
the same numbers as inline (outputs and input gradients bit for bit; weight gradients, sums
over the batch that the split adds in another order, to float32 rounding), and pass
centred differences (issue 12).

Uses the split fixture of test_split_layers.py: size floor 0 and 2 BLAS threads, so the
small shapes of a gradient check take the split path.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.gradcheck import check_layer
from dlcore.layers.sequential import Sequential
from tests.dlcore.parallel.test_split_layers import split_always  # noqa: F401  (the fixture)

CONV = {"type": "conv2d", "filters": 3, "size": 3, "pad": 1}
STACKS = {
    "bn-relu": [CONV, {"type": "spatial_batchnorm"}, {"type": "relu"}],
    "resnet-block": [CONV, {"type": "residual", "layers": [
        CONV, {"type": "spatial_batchnorm"}, {"type": "relu"}, CONV, {"type": "spatial_batchnorm"},
    ]}],
    "vector-bn-dropout": [{"type": "flatten"}, {"type": "batchnorm"}, {"type": "dropout", "p": 0.3}],
}


def stack(name, dtype=np.float64):
    net = Sequential({"layers": STACKS[name]})
    net.build((5, 5, 3), np.random.default_rng(0), dtype)
    return net


def run(net, x, seed=4):
    out = net.forward(x, training=True, rng=np.random.default_rng(seed))
    dx = net.backward(np.random.default_rng(5).standard_normal(out.shape).astype(x.dtype))
    return out, dx, {k: v.copy() for k, v in net.grads.items()}


@pytest.mark.parametrize("name", sorted(STACKS))
def test_split_equals_inline(name, split_always):  # noqa: F811
    x = np.random.default_rng(1).standard_normal((6, 5, 5, 3)).astype(np.float32)
    split = run(stack(name, np.float32), x)
    if name != "vector-bn-dropout":  # a (6, 75) batch is one wide row: nothing to split
        assert len(split_always) >= 2  # pieces ran on the caller and on a pool thread
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        inline = run(stack(name, np.float32), x)
    np.testing.assert_array_equal(split[0], inline[0])
    np.testing.assert_array_equal(split[1], inline[1])
    for key in inline[2]:
        np.testing.assert_allclose(split[2][key], inline[2][key], rtol=1e-5, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("name", ["bn-relu", "resnet-block"])
def test_split_passes_centred_differences(name, split_always):  # noqa: F811
    net = stack(name)
    x = np.random.default_rng(2).standard_normal((4, 5, 5, 3))
    errors = check_layer(net, x, training=True)
    # biases just before a training batchnorm have zero gradients: relative errors meaningless
    checked = {k: v for k, v in errors.items() if not (k.endswith(".b") and k != "shortcut.b")}
    assert max(checked.values()) < 1e-6, errors
