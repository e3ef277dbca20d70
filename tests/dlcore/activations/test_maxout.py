"""Maxout: k pieces with own weights, gradients away from ties, a direct reference, torch autograd."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.activations.maxout import Maxout
from dlcore.errors import ConfigError
from dlcore.gradcheck import check_layer, reference_error


def pieces_reference(x2, w, b, k):
    """Each piece computed on its own, then the maximum: (M, C) -> (M, U)."""
    return np.max(np.stack([x2 @ w[:, j::k] + b[j::k] for j in range(k)]), axis=0)


def built_without_ties(x_shape, gap=1e-2, **cfg):
    """A layer and an input whose best and second-best pieces differ by at least ``gap``."""
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        layer = Maxout(**cfg)
        layer.build(x_shape[1:], rng, dtype=np.float64)
        layer.params["b"][...] = rng.standard_normal(layer.params["b"].shape)
        x = rng.standard_normal(x_shape)
        k = layer.config.pieces
        z = (x.reshape(-1, x_shape[-1]) @ layer.params["W"] + layer.params["b"]).reshape(-1, k)
        top2 = np.sort(z, axis=1)[:, -2:]
        if np.min(top2[:, 1] - top2[:, 0]) >= gap:
            return layer, x
    raise AssertionError("no tie-free draw found")


CASES = [((4, 5), {}), ((3, 6), {"pieces": 3, "units": 2}), ((2, 2, 2, 3), {"pieces": 2, "units": 4})]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("x_shape,cfg", CASES)
def test_gradients_match_centred_differences(x_shape, cfg, training):
    layer, x = built_without_ties(x_shape, **cfg)
    errors = check_layer(layer, x, training=training)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("x_shape,cfg", CASES)
def test_output_is_the_max_of_the_pieces(x_shape, cfg):
    layer, x = built_without_ties(x_shape, **cfg)
    out = layer.forward(x)
    c = x_shape[-1]
    ref = pieces_reference(x.reshape(-1, c), layer.params["W"], layer.params["b"], layer.config.pieces)
    np.testing.assert_allclose(out.reshape(-1, out.shape[-1]), ref, rtol=1e-12)
    assert out.shape[1:] == layer.infer(x_shape[1:]).out_shape


def test_default_units_keep_the_width_and_parameters_are_k_affines():
    layer = Maxout(pieces=3)
    info = layer.infer((5,))
    assert info.out_shape == (5,) and info.params == 3 * (5 * 5 + 5)
    assert Maxout.regularized == ("W",)


@pytest.mark.parametrize(
    "params,field", [({"pieces": -2}, "pieces"), ({"pieces": 1}, "pieces"), ({"units": 0}, "units")]
)
def test_bad_parameters_raise_config_error_naming_the_field(params, field):
    with pytest.raises(ConfigError) as info:
        Maxout(**params)
    assert info.value.field == field and "maxout" in info.value.message


@pytest.mark.torch
@pytest.mark.parametrize("x_shape,cfg", CASES)
def test_matches_pytorch_autograd_in_float64(x_shape, cfg):
    import torch

    layer, x = built_without_ties(x_shape, **cfg)
    dout_shape = x_shape[:-1] + (layer.infer(x_shape[1:]).out_shape[-1],)
    dout = np.random.default_rng(9).standard_normal(dout_shape)
    out = layer.forward(x)
    dx = layer.backward(dout)
    k = layer.config.pieces
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(layer.params["W"].copy(), requires_grad=True)
    tb = torch.tensor(layer.params["b"].copy(), requires_grad=True)
    tout = (tx @ tw + tb).unflatten(-1, (-1, k)).amax(dim=-1)
    tout.backward(torch.tensor(dout))
    assert reference_error(out, tout.detach().numpy()) < 1e-10
    assert reference_error(dx, tx.grad.numpy()) < 1e-10
    assert reference_error(layer.grads["W"], tw.grad.numpy()) < 1e-10
    assert reference_error(layer.grads["b"], tb.grad.numpy()) < 1e-10
