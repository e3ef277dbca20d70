"""BatchNorm and SpatialBatchNorm: gradients, PyTorch parity, statistics, configuration errors."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.gradcheck import check_layer, reference_error
from dlcore.layers.batchnorm import BatchNorm, SpatialBatchNorm


def build(cls, in_shape, seed=0, dtype=np.float64, **cfg):
    """A built layer with random gamma, beta and running statistics (so every term matters)."""
    rng = np.random.default_rng(seed)
    layer = cls(**cfg)
    layer.build(in_shape, rng, dtype=dtype)
    c = in_shape[-1]
    layer.params["gamma"][...] = rng.uniform(0.5, 2.0, c)
    layer.params["beta"][...] = rng.standard_normal(c)
    layer.state["running_mean"][...] = rng.standard_normal(c)
    layer.state["running_var"][...] = rng.uniform(0.5, 2.0, c)
    return layer


CASES = [
    (BatchNorm, (4, 3)),
    (BatchNorm, (7, 5)),
    (SpatialBatchNorm, (2, 3, 3, 2)),
    (SpatialBatchNorm, (3, 2, 4, 3)),
]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("cls,x_shape", CASES)
def test_gradients_match_centred_differences(cls, x_shape, training):
    layer = build(cls, x_shape[1:])
    # Not seed 1: check_layer draws dout from seed 1, and dout = x would cancel in dx.
    x = np.random.default_rng(7).standard_normal(x_shape) * 2 + 0.5
    errors = check_layer(layer, x, training=training)
    assert set(errors) == {"x", "gamma", "beta"}
    assert max(errors.values()) < 1e-7, errors


def test_training_output_has_zero_mean_unit_std_per_feature():
    layer = BatchNorm()
    layer.build((4,), np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((200, 4)) * [1, 5, 0.1, 30] + [3, -2, 0, 100]
    out = layer.forward(x, training=True)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-3)  # eps=1e-5 shifts the std by < 1e-3


def test_training_output_takes_beta_mean_and_gamma_std():
    layer = SpatialBatchNorm()
    layer.build((4, 4, 3), np.random.default_rng(0), dtype=np.float64)
    gamma, beta = np.array([2.0, 0.5, 3.0]), np.array([-1.0, 4.0, 0.0])
    layer.params["gamma"][...] = gamma
    layer.params["beta"][...] = beta
    x = np.random.default_rng(1).standard_normal((10, 4, 4, 3)) * 7 + 2
    out = layer.forward(x, training=True)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), beta, atol=1e-10)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), gamma, rtol=1e-3)


def test_running_statistics_follow_the_documented_formula():
    momentum = 0.7
    layer = BatchNorm(momentum=momentum)
    layer.build((3,), np.random.default_rng(0), dtype=np.float64)
    rng = np.random.default_rng(2)
    expected_mean, expected_var = np.zeros(3), np.ones(3)
    for _ in range(3):
        x = rng.standard_normal((8, 3)) * 3 + 1
        layer.forward(x, training=True)
        # running = momentum * running + (1 - momentum) * batch, with the unbiased variance.
        expected_mean = momentum * expected_mean + (1 - momentum) * x.mean(axis=0)
        expected_var = momentum * expected_var + (1 - momentum) * x.var(axis=0, ddof=1)
    np.testing.assert_allclose(layer.state["running_mean"], expected_mean, rtol=1e-12)
    np.testing.assert_allclose(layer.state["running_var"], expected_var, rtol=1e-12)


@pytest.mark.parametrize("cls,x_shape", [(BatchNorm, (16, 2)), (SpatialBatchNorm, (16, 2, 2, 2))])
def test_running_statistics_converge_to_the_data(cls, x_shape):
    mean, std = np.array([5.0, -3.0]), np.array([2.0, 0.5])
    layer = cls()
    layer.build(x_shape[1:], np.random.default_rng(0), dtype=np.float64)
    rng = np.random.default_rng(3)
    for _ in range(300):
        layer.forward(rng.standard_normal(x_shape) * std + mean, training=True)
    np.testing.assert_allclose(layer.state["running_mean"], mean, atol=0.1)
    np.testing.assert_allclose(layer.state["running_var"], std**2, rtol=0.1)


def test_evaluation_uses_running_statistics_and_ignores_the_batch():
    layer = build(BatchNorm, (3,))
    before = {k: v.copy() for k, v in layer.state.items()}
    x = np.random.default_rng(4).standard_normal((5, 3))
    out = layer.forward(x, training=False)
    expected = (x - before["running_mean"]) / np.sqrt(before["running_var"] + 1e-5)
    expected = expected * layer.params["gamma"] + layer.params["beta"]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    for key, value in before.items():
        np.testing.assert_array_equal(layer.state[key], value)
    # One sample at a time gives the same rows: evaluation is per-sample.
    np.testing.assert_allclose(layer.forward(x[:1], training=False), out[:1], rtol=1e-12)


def test_float32_stays_float32():
    layer = SpatialBatchNorm()
    layer.build((2, 2, 3), np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((4, 2, 2, 3)).astype(np.float32)
    out = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == layer.grads["gamma"].dtype == np.float32
    assert layer.state["running_var"].dtype == np.float32


def test_infer_reports_shape_and_parameters():
    info = SpatialBatchNorm().infer((5, 6, 4))
    assert info.out_shape == (5, 6, 4) and info.params == 8
    assert info.flops == 4 * 5 * 6 * 4  # subtract, divide, scale, shift per value
    assert BatchNorm().infer((10,)).params == 20


@pytest.mark.parametrize(
    "cls,params,field",
    [
        (BatchNorm, {"momentum": 1.0}, "momentum"),
        (BatchNorm, {"momentum": -0.1}, "momentum"),
        (SpatialBatchNorm, {"eps": 0.0}, "eps"),
        (SpatialBatchNorm, {"eps": -1e-5}, "eps"),
        (BatchNorm, {"mommentum": 0.9}, "mommentum"),
    ],
)
def test_bad_parameters_raise_config_error_naming_the_field(cls, params, field):
    with pytest.raises(ConfigError) as info:
        cls(**params)
    assert info.value.field == field
    assert cls.name in info.value.message


def test_wrong_input_rank_is_a_config_error():
    with pytest.raises(ConfigError, match="spatial_batchnorm"):
        BatchNorm().infer((4, 4, 3))
    with pytest.raises(ConfigError, match="batchnorm"):
        SpatialBatchNorm().infer((12,))


# --------------------------------------------------------------------------- PyTorch parity


def torch_run(x_nchw, gamma, beta, running_mean, running_var, dout_nchw, training, momentum, eps):
    import torch
    import torch.nn.functional as F

    x = torch.tensor(x_nchw, requires_grad=True)
    g = torch.tensor(gamma, requires_grad=True)
    b = torch.tensor(beta, requires_grad=True)
    rm, rv = torch.tensor(running_mean.copy()), torch.tensor(running_var.copy())
    # torch's momentum weighs the new batch: ours weighs the old estimate.
    out = F.batch_norm(x, rm, rv, g, b, training=training, momentum=1 - momentum, eps=eps)
    out.backward(torch.tensor(dout_nchw))
    return {
        "out": out.detach().numpy(),
        "dx": x.grad.numpy(),
        "gamma": g.grad.numpy(),
        "beta": b.grad.numpy(),
        "running_mean": rm.numpy(),
        "running_var": rv.numpy(),
    }


@pytest.mark.torch
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("cls,x_shape", CASES + [(SpatialBatchNorm, (4, 5, 3, 6))])
def test_matches_pytorch_in_float64(cls, x_shape, training):
    layer = build(cls, x_shape[1:], momentum=0.8, eps=1e-3)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape) * 3 - 1
    dout = rng.standard_normal(x_shape)
    state = {k: v.copy() for k, v in layer.state.items()}
    out = layer.forward(x, training=training)
    dx = layer.backward(dout)
    # NHWC -> NCHW for torch; (N, D) is already torch's layout.
    to_torch = (lambda a: a.transpose(0, 3, 1, 2)) if x.ndim == 4 else (lambda a: a)
    ref = torch_run(
        np.ascontiguousarray(to_torch(x)), layer.params["gamma"], layer.params["beta"],
        state["running_mean"], state["running_var"], np.ascontiguousarray(to_torch(dout)),
        training, momentum=0.8, eps=1e-3,
    )
    ours = {
        "out": to_torch(out), "dx": to_torch(dx), "gamma": layer.grads["gamma"], "beta": layer.grads["beta"],
        "running_mean": layer.state["running_mean"], "running_var": layer.state["running_var"],
    }
    for key, value in ref.items():
        assert reference_error(ours[key], value) < 1e-10, key


@pytest.mark.torch
def test_running_statistics_follow_torch_modules_over_many_steps():
    import torch

    ours = BatchNorm(momentum=0.8)
    ours.build((4,), np.random.default_rng(0), dtype=np.float64)
    theirs = torch.nn.BatchNorm1d(4, momentum=1 - 0.8, dtype=torch.float64)  # torch's momentum = 1 - ours
    rng = np.random.default_rng(6)
    for _ in range(6):
        x = rng.standard_normal((5, 4)) * 2 + 3
        ours.forward(x, training=True)
        theirs(torch.tensor(x))
    assert reference_error(ours.state["running_mean"], theirs.running_mean.numpy()) < 1e-10
    assert reference_error(ours.state["running_var"], theirs.running_var.numpy()) < 1e-10
    x = rng.standard_normal((3, 4))
    theirs.eval()
    assert reference_error(ours.forward(x, training=False), theirs(torch.tensor(x)).detach().numpy()) < 1e-10
