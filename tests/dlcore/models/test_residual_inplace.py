"""The residual block writes its sum into the branch's output when the branch ends in a layer
that declares ``fresh_output`` (batchnorm): gradients, PyTorch parity and no aliasing (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.gradcheck import check_layer, reference_error
from dlcore.layers.residual import Residual

CONV = {"type": "conv2d", "filters": 3, "size": 3, "pad": 1}
BN = {"type": "spatial_batchnorm"}


#: What may follow the block's second convolution: a batchnorm and the convolution itself
#: return new arrays they keep nothing of (the sum is written into them); a 1x1 average
#: pooling does not declare so (the block makes a fresh sum).
LAST = {"bn": [BN], "conv": [], "pool": [{"type": "avgpool", "size": 1}]}


def block(shortcut="identity", activation="relu", stochastic_depth=0.0, last="bn", in_shape=(4, 4, 3)):
    layers = [CONV, BN, {"type": "relu"}, CONV] + LAST[last]
    if shortcut == "projection":
        layers[0] = {"type": "conv2d", "filters": 3, "size": 4, "stride": 2, "pad": 1}
    layer = Residual(
        {"layers": layers, "shortcut": shortcut, "activation": activation, "stochastic_depth": stochastic_depth}
    )
    layer.build(in_shape, np.random.default_rng(0), np.float64)
    return layer


def assert_gradients(layer, x, training):
    errors = check_layer(layer, x, training=training)
    if training:
        # A bias just before a training batchnorm has a zero gradient (the mean removes it):
        # the relative error of a zero against the numerical difference's rounding is
        # meaningless, so those are checked to be zero instead.
        for key in [k for k in errors if k.endswith(".b") and k != "shortcut.b"]:
            assert np.abs(layer.grads[key]).max() < 1e-12, key
            errors.pop(key)
    assert max(errors.values()) < 1e-6, errors


def inputs(n=3, in_shape=(4, 4, 3), seed=1):
    return np.random.default_rng(seed).standard_normal((n,) + in_shape)


@pytest.mark.parametrize("shortcut", ["identity", "projection"])
@pytest.mark.parametrize("activation", ["relu", None])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gradients_with_the_sum_written_into_the_branch(shortcut, activation, training):
    layer = block(shortcut, activation)
    assert layer._branch_output_is_free()
    assert_gradients(layer, inputs(), training)


def test_evaluation_with_stochastic_depth_scales_the_branch_in_place_correctly():
    layer = block(stochastic_depth=0.25)
    x = inputs()
    free = layer.forward(x, training=False)
    branch = layer.body.forward(x, training=False)
    np.testing.assert_allclose(free, np.maximum(x + 0.75 * branch, 0), rtol=1e-12, atol=1e-14)
    assert_gradients(layer, x, training=False)


@pytest.mark.parametrize("last", ["bn", "conv", "pool"], ids=["bn-last", "conv-last", "pool-last"])
def test_in_place_and_fresh_sums_agree_and_never_write_the_input(last):
    layer = block(last=last)
    assert layer._branch_output_is_free() is (last != "pool")
    x = inputs()
    keep = x.copy()
    out = layer.forward(x, training=True)
    branch = layer.body.forward(x, training=True)
    np.testing.assert_allclose(out, np.maximum(x + branch, 0), rtol=1e-12, atol=1e-14)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    dout_keep = dout.copy()
    layer.forward(x, training=True)
    dx = layer.backward(dout)
    np.testing.assert_array_equal(x, keep)
    np.testing.assert_array_equal(dout, dout_keep)
    assert not np.shares_memory(out, x) and not np.shares_memory(dx, dout)


def test_two_calls_give_separate_outputs():
    layer = block()
    x = inputs()
    a = layer.forward(x, training=False)
    a_copy = a.copy()
    b = layer.forward(x * 2, training=False)
    assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, a_copy)


@pytest.mark.torch
def test_resnet_tiny_block_matches_torch_in_float64():
    import torch
    import torch.nn.functional as F

    in_shape = (6, 6, 4)
    layer = Residual({"layers": [
        {"type": "conv2d", "filters": 4, "size": 3, "pad": 1}, BN, {"type": "relu"},
        {"type": "conv2d", "filters": 4, "size": 3, "pad": 1}, BN,
    ]})
    layer.build(in_shape, np.random.default_rng(0), np.float64)
    x = inputs(n=5, in_shape=in_shape) * 2 + 1
    dout = np.random.default_rng(3).standard_normal(x.shape)
    out = layer.forward(x, training=True)
    dx = layer.backward(dout)

    def nchw(a):
        return torch.tensor(np.ascontiguousarray(a.transpose(0, 3, 1, 2)), requires_grad=True)

    tx = nchw(x)
    w0 = torch.tensor(layer.params["0.W"].transpose(3, 2, 0, 1).copy(), requires_grad=True)
    w3 = torch.tensor(layer.params["3.W"].transpose(3, 2, 0, 1).copy(), requires_grad=True)
    b0 = torch.tensor(layer.params["0.b"], requires_grad=True)
    b3 = torch.tensor(layer.params["3.b"], requires_grad=True)
    g1, g4 = (torch.tensor(layer.params[k], requires_grad=True) for k in ("1.gamma", "4.gamma"))
    s1, s4 = (torch.tensor(layer.params[k], requires_grad=True) for k in ("1.beta", "4.beta"))
    h = F.relu(F.batch_norm(F.conv2d(tx, w0, b0, padding=1), None, None, g1, s1, training=True))
    h = F.batch_norm(F.conv2d(h, w3, b3, padding=1), None, None, g4, s4, training=True)
    tout = F.relu(tx + h)
    tout.backward(torch.tensor(np.ascontiguousarray(dout.transpose(0, 3, 1, 2))))
    back = (0, 2, 3, 1)
    assert reference_error(out, tout.detach().numpy().transpose(back)) < 1e-10
    assert reference_error(dx, tx.grad.numpy().transpose(back)) < 1e-10
    assert reference_error(layer.grads["0.W"], w0.grad.numpy().transpose(2, 3, 1, 0)) < 1e-10
    assert reference_error(layer.grads["3.W"], w3.grad.numpy().transpose(2, 3, 1, 0)) < 1e-10
    for key, t in (("1.gamma", g1), ("4.gamma", g4), ("1.beta", s1), ("4.beta", s4)):
        assert reference_error(layer.grads[key], t.grad.numpy()) < 1e-10, key
