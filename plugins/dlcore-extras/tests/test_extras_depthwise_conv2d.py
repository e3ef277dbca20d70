"""depthwise_conv2d: gradients, parity with F.conv2d(groups=C), shape inference and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.gradcheck import check_layer, rel_error
from dlcore_extras.layers.depthwise_conv2d import DepthwiseConv2D


def built(in_shape, seed=0, **cfg):
    layer = DepthwiseConv2D(**cfg)
    layer.build(in_shape, np.random.default_rng(seed), dtype=np.float64)
    layer.params["b"][...] = np.random.default_rng(seed + 1).standard_normal(layer.params["b"].shape)
    return layer


CASES = [
    ((2, 5, 5, 3), {"size": 3}),
    ((2, 5, 5, 3), {"size": 3, "pad": 1, "stride": 2}),
    ((2, 4, 6, 2), {"size": 3, "pad": "same", "multiplier": 2}),
    ((1, 6, 6, 2), {"size": 2, "stride": 2}),
    ((2, 4, 4, 3), {"size": 1, "multiplier": 3}),
]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("x_shape,cfg", CASES)
def test_gradients_match_centred_differences(x_shape, cfg, training):
    layer = built(x_shape[1:], **cfg)
    x = np.random.default_rng(7).standard_normal(x_shape)
    errors = check_layer(layer, x, training=training)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("x_shape,cfg", CASES)
def test_infer_matches_the_output(x_shape, cfg):
    layer = built(x_shape[1:], **cfg)
    info = layer.infer(x_shape[1:])
    out = layer.forward(np.zeros(x_shape))
    assert out.shape[1:] == info.out_shape
    assert info.params == sum(p.size for p in layer.params.values())


def test_channels_do_not_mix():
    layer = built((4, 4, 3), size=3, pad=1)
    x = np.zeros((1, 4, 4, 3))
    x[..., 1] = np.random.default_rng(2).standard_normal((4, 4))
    out = layer.forward(x) - layer.params["b"]
    assert np.all(out[..., [0, 2]] == 0) and np.any(out[..., 1] != 0)


@pytest.mark.parametrize(
    "cfg,in_shape,field,words",
    [
        ({"size": 3, "stride": 2}, (6, 6, 2), "stride", ["(6 - 3 + 2*0)/2 + 1 = 2.5", "whole number"]),
        ({"size": 5}, (3, 3, 2), "size", ["larger than the padded input"]),
        ({"size": 3, "stride": 2, "pad": "same"}, (5, 5, 2), "pad", ["same", "stride 2"]),
    ],
)
def test_impossible_shapes_are_config_errors_with_the_rule(cfg, in_shape, field, words):
    with pytest.raises(ConfigError) as info:
        DepthwiseConv2D(**cfg).infer(in_shape)
    assert info.value.field == field
    for word in words:
        assert word in info.value.message


@pytest.mark.parametrize(
    "params,field", [({"size": 0}, "size"), ({"stride": 0}, "stride"), ({"pad": -1}, "pad"), ({"multiplier": 0}, "multiplier")]
)
def test_bad_parameters_raise_config_error_naming_the_field(params, field):
    with pytest.raises(ConfigError) as info:
        DepthwiseConv2D(**params)
    assert info.value.field == field


@pytest.mark.torch
@pytest.mark.parametrize("x_shape,cfg", CASES)
def test_matches_pytorch_in_float64(x_shape, cfg):
    import torch
    import torch.nn.functional as F

    layer = built(x_shape[1:], **cfg)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    w = layer.params["W"]
    f, _, c, m = w.shape
    # Ours (F, F, C, M) -> torch (C * M, 1, F, F), output channel c * M + j.
    tw = torch.tensor(np.ascontiguousarray(w.transpose(2, 3, 0, 1).reshape(c * m, 1, f, f)), requires_grad=True)
    tb = torch.tensor(layer.params["b"].copy(), requires_grad=True)
    tx = torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), requires_grad=True)
    tout = F.conv2d(tx, tw, tb, stride=layer.config.stride, padding=layer.pad_amount, groups=c)
    tout.backward(torch.tensor(np.ascontiguousarray(dout.transpose(0, 3, 1, 2))))
    nchw = lambda a: a.transpose(0, 3, 1, 2)
    assert rel_error(nchw(out), tout.detach().numpy()) < 1e-10
    assert rel_error(nchw(dx), tx.grad.numpy()) < 1e-10
    assert rel_error(layer.grads["W"], tw.grad.numpy().reshape(c, m, f, f).transpose(2, 3, 0, 1)) < 1e-10
    assert rel_error(layer.grads["b"], tb.grad.numpy()) < 1e-10
