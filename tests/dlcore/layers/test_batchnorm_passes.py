"""Batchnorm's fused training pass (issue 12): one-pass statistics, the centred fallback, wide rows.

The one-pass variance E[x^2] - mean^2 cancels when a channel's mean is large against its
spread; such batches are centred first.  These tests drive both paths, in float64 against
a two-pass reference and in float32 against float64, with shapes whose row count is not a
multiple of the wide row (odd sizes and a prime one).
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.gradcheck import check_layer, reference_error
from dlcore.layers import batchnorm as bn
from dlcore.layers.batchnorm import BatchNorm, SpatialBatchNorm


def reference(x, gamma, beta, dout, eps):
    """Two-pass batchnorm and its gradients in float64, written the textbook way."""
    x, dout = x.astype(np.float64), dout.astype(np.float64)
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    xhat = (x - mean) / np.sqrt(var + eps)
    out = gamma * xhat + beta
    m = x.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dx = gamma / np.sqrt(var + eps) * (dout - (xhat * dgamma + dbeta) / m)
    return out, dx, dgamma, dbeta, mean, var


# (rows, features, mean, spread, one channel far off): means under the one-pass cut-off
# (4 spreads), means far above it, and one channel far off while the others are not.
CASES = [
    ((4096, 16), 0.5, 1.0, False),
    ((4096, 16), 0.5, 1.0, True),
    ((777, 5), 30.0, 0.5, False),
    ((1031, 3), 1e3, 1.0, False),
    ((64 * 5 * 5, 32), -3.0, 2.0, False),
    ((64 * 5 * 5, 32), -3.0, 2.0, True),
]


@pytest.mark.parametrize("shape,mean,spread,far_channel", CASES)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-11), (np.float32, 1e-4)])
def test_training_pass_matches_two_pass_reference(shape, mean, spread, far_channel, dtype, tol):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * spread + mean
    if far_channel:
        x[:, 0] += 100 * spread
    dout = rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 2.0, shape[1])
    beta = rng.standard_normal(shape[1])
    out, cache = bn.batchnorm_train_forward(x.astype(dtype), gamma.astype(dtype), beta.astype(dtype), 1e-5)
    dx, dgamma, dbeta = bn.batchnorm_train_backward(dout.astype(dtype), cache)
    ref = reference(x.astype(dtype), gamma, beta, dout.astype(dtype), 1e-5)
    assert out.dtype == dx.dtype == dgamma.dtype == dbeta.dtype == dtype
    for name, ours, theirs in zip(("out", "dx", "dgamma", "dbeta"), (out, dx, dgamma, dbeta), ref):
        assert reference_error(ours, theirs) < tol, name
    np.testing.assert_allclose(cache[4], ref[4], rtol=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(cache[5], ref[5], rtol=1e-3 if dtype == np.float32 else 1e-9)


def test_far_off_means_take_the_centred_path_and_near_ones_do_not():
    rng = np.random.default_rng(1)
    near = rng.standard_normal((512, 4)) + 1.0
    far = rng.standard_normal((512, 4)) + 50.0
    ones, zeros = np.ones(4), np.zeros(4)
    _, near_cache = bn.batchnorm_train_forward(near, ones, zeros, 1e-5)
    _, far_cache = bn.batchnorm_train_forward(far, ones, zeros, 1e-5)
    assert near_cache[0] is near and not near_cache[1].any()  # one pass: x itself, no shift
    assert far_cache[0] is not far and np.allclose(far_cache[1], far.mean(axis=0), atol=0.2)


@pytest.mark.parametrize("cls,x_shape", [(BatchNorm, (7, 5)), (SpatialBatchNorm, (3, 2, 4, 3))])
def test_gradients_match_centred_differences_with_far_off_means(cls, x_shape):
    layer = cls()
    layer.build(x_shape[1:], np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(7).standard_normal(x_shape) * 0.5 + 40.0
    errors = check_layer(layer, x, training=True)
    assert max(errors.values()) < 1e-6, errors


def test_input_is_kept_not_copied_and_never_written():
    layer = SpatialBatchNorm()
    layer.build((8, 8, 16), np.random.default_rng(0))
    x = np.random.default_rng(2).standard_normal((4, 8, 8, 16)).astype(np.float32)
    before = x.copy()
    out = layer.forward(x, training=True)
    layer.backward(np.ones_like(out))
    np.testing.assert_array_equal(x, before)
    assert not np.shares_memory(out, x)


@pytest.mark.parametrize("m,d", [(65536, 16), (1031, 3), (7, 20000), (1, 4)])
def test_wide_rows_cover_the_array_exactly(m, d):
    wide = bn._Wide(m, d)
    assert wide.rows * wide.width == m * d and wide.width % d == 0
    assert wide.width <= max(bn.WIDE_ROW, d)
