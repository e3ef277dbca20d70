"""DropConnect: masked weights in training, full weights in evaluation, gradients, errors."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.gradcheck import check_layer
from dlcore.layers.dropconnect import DropConnect


def built(in_shape, seed=0, **cfg):
    layer = DropConnect(**cfg)
    layer.build(in_shape, np.random.default_rng(seed), dtype=np.float64)
    layer.params["b"][...] = np.random.default_rng(seed + 1).standard_normal(layer.params["b"].shape)
    return layer


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("x_shape,units,p", [((4, 6), 3, 0.5), ((3, 5), 7, 0.2), ((2, 2, 2, 3), 4, 0.7)])
def test_gradients_match_centred_differences(x_shape, units, p, training):
    layer = built(x_shape[1:], units=units, p=p)
    x = np.random.default_rng(7).standard_normal(x_shape)
    errors = check_layer(layer, x, training=training)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < 1e-7, errors


def test_evaluation_uses_the_full_weights():
    layer = built((5,), units=3, p=0.5)
    x = np.random.default_rng(2).standard_normal((4, 5))
    out = layer.forward(x, training=False)
    np.testing.assert_allclose(out, x @ layer.params["W"] + layer.params["b"], rtol=1e-12)


def test_training_drops_a_fraction_p_of_weights_and_keeps_the_expectation():
    p = 0.3
    layer = built((200,), units=300, p=p)
    # One-hot rows read single weights: row i of the output is W[i] masked, plus b.
    x = np.eye(200)
    out = layer.forward(x, training=True, rng=np.random.default_rng(3)) - layer.params["b"]
    w = layer.params["W"]
    dropped = np.mean(out == 0)
    assert abs(dropped - p) < 0.01  # 60,000 draws
    kept = out != 0
    np.testing.assert_allclose(out[kept], w[kept] / (1 - p), rtol=1e-9, atol=1e-12)
    # Averaged over masks, the masked layer equals the full one.
    mean_out = np.mean(
        [layer.forward(x[:5], training=True, rng=np.random.default_rng(s)) for s in range(400)], axis=0
    )
    full = layer.forward(x[:5], training=False)
    assert np.max(np.abs(mean_out - full)) < 0.1 * np.max(np.abs(full))


def test_dropped_weights_get_no_gradient():
    layer = built((6,), units=4, p=0.5)
    x = np.random.default_rng(2).standard_normal((3, 6))
    layer.forward(x, training=True, rng=np.random.default_rng(5))
    mask = layer.cache[1][2]
    layer.backward(np.ones((3, 4)))
    assert np.all(layer.grads["W"][mask == 0] == 0)
    assert np.all(layer.grads["W"][mask != 0] != 0)


def test_training_without_rng_is_a_clear_error():
    layer = built((3,), units=2)
    with pytest.raises(ValueError, match="rng"):
        layer.forward(np.ones((2, 3)), training=True)


def test_shape_inference_and_flags():
    info = DropConnect(units=5).infer((2, 2, 3))
    assert info.out_shape == (5,) and info.params == 12 * 5 + 5
    assert DropConnect.stochastic and DropConnect.mode_dependent
    assert DropConnect.regularized == ("W",)


@pytest.mark.parametrize(
    "params,field",
    [({"units": 3, "p": 1.0}, "p"), ({"units": 3, "p": -0.5}, "p"), ({"units": 0}, "units"), ({}, "units")],
)
def test_bad_parameters_raise_config_error_naming_the_field(params, field):
    with pytest.raises(ConfigError) as info:
        DropConnect(**params)
    assert info.value.field == field and "dropconnect" in info.value.message
