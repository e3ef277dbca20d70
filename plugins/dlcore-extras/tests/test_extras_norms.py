"""layernorm and groupnorm: gradients, statistics, parity with F.layer_norm and F.group_norm."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.gradcheck import check_layer, rel_error
from dlcore_extras.layers.groupnorm import GroupNorm
from dlcore_extras.layers.layernorm import LayerNorm


def built(cls, in_shape, seed=0, **cfg):
    """A layer with random gamma and beta, so a channel mix-up would show."""
    layer = cls(**cfg)
    layer.build(in_shape, np.random.default_rng(seed), dtype=np.float64)
    rng = np.random.default_rng(seed + 1)
    c = in_shape[-1]
    layer.params["gamma"][...] = rng.uniform(0.5, 2.0, c)
    layer.params["beta"][...] = rng.standard_normal(c)
    return layer


CASES = [
    (LayerNorm, (4, 6), {}),
    (LayerNorm, (2, 3, 3, 4), {"eps": 1e-3}),
    (GroupNorm, (3, 3, 3, 4), {"groups": 2}),
    (GroupNorm, (2, 2, 3, 6), {"groups": 3}),
    (GroupNorm, (2, 2, 2, 4), {"groups": 1}),
    (GroupNorm, (2, 2, 2, 4), {"groups": 4}),
    (GroupNorm, (3, 8), {"groups": 2}),
]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("cls,x_shape,cfg", CASES)
def test_gradients_match_centred_differences(cls, x_shape, cfg, training):
    layer = built(cls, x_shape[1:], **cfg)
    x = np.random.default_rng(7).standard_normal(x_shape) * 2 + 1
    errors = check_layer(layer, x, training=training)
    assert set(errors) == {"x", "gamma", "beta"}
    assert max(errors.values()) < 1e-7, errors


def test_layernorm_normalizes_each_sample_over_its_features():
    layer = LayerNorm()
    layer.build((50,), np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((3, 50)) * [[1.0], [10.0], [0.1]] + [[5.0], [-3.0], [0.0]]
    out = layer.forward(x)
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=1), 1, atol=1e-3)


def test_groupnorm_normalizes_each_sample_group():
    layer = GroupNorm(groups=2)
    layer.build((4, 4, 6), np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((2, 4, 4, 6)) * 4 + 3
    out = layer.forward(x).reshape(2, 16, 2, 3)
    np.testing.assert_allclose(out.mean(axis=(1, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=(1, 3)), 1, atol=1e-3)


def test_independent_of_the_batch():
    x = np.random.default_rng(1).standard_normal((5, 2, 2, 4))
    for layer in (built(LayerNorm, (2, 2, 4)), built(GroupNorm, (2, 2, 4), groups=2)):
        whole = layer.forward(x, training=True)
        np.testing.assert_allclose(layer.forward(x[2:3], training=False), whole[2:3], rtol=1e-12)


def test_groups_must_divide_channels():
    with pytest.raises(ConfigError) as info:
        GroupNorm(groups=4).infer((3, 3, 6))
    assert info.value.field == "groups" and "6" in info.value.message and "4" in info.value.message


@pytest.mark.parametrize(
    "cls,params,field",
    [(GroupNorm, {"groups": 0}, "groups"), (LayerNorm, {"eps": 0.0}, "eps"), (GroupNorm, {"eps": -1.0}, "eps")],
)
def test_bad_parameters_raise_config_error_naming_the_field(cls, params, field):
    with pytest.raises(ConfigError) as info:
        cls(**params)
    assert info.value.field == field and cls.name in info.value.message


@pytest.mark.torch
@pytest.mark.parametrize("cls,x_shape,cfg", CASES)
def test_matches_pytorch_in_float64(cls, x_shape, cfg):
    import torch
    import torch.nn.functional as F

    layer = built(cls, x_shape[1:], **cfg)
    rng = np.random.default_rng(5)
    x, dout = rng.standard_normal(x_shape) * 3 - 1, rng.standard_normal(x_shape)
    out = layer.forward(x)
    dx = layer.backward(dout)
    eps = layer.config.eps
    g = torch.tensor(layer.params["gamma"].copy(), requires_grad=True)
    b = torch.tensor(layer.params["beta"].copy(), requires_grad=True)
    if cls is LayerNorm:
        # Over the last axis: torch's layer_norm with normalized_shape (C,) works on NHWC directly.
        to_torch = lambda a: a
        tx = torch.tensor(x, requires_grad=True)
        tout = F.layer_norm(tx, (x_shape[-1],), g, b, eps)
    else:
        # group_norm wants channels on axis 1: NHWC -> NCHW, and (N, D) as (N, D, 1).
        if len(x_shape) == 4:
            to_torch = lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2))
        else:
            to_torch = lambda a: a[:, :, None]
        tx = torch.tensor(to_torch(x), requires_grad=True)
        tout = F.group_norm(tx, layer.config.groups, g, b, eps)
    tout.backward(torch.tensor(to_torch(dout)))
    assert rel_error(to_torch(out), tout.detach().numpy()) < 1e-10
    assert rel_error(to_torch(dx), tx.grad.numpy()) < 1e-10
    assert rel_error(layer.grads["gamma"], g.grad.numpy()) < 1e-10
    assert rel_error(layer.grads["beta"], b.grad.numpy()) < 1e-10
