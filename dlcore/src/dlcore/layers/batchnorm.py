"""Batch normalization for vectors (N, D) and for images (N, H, W, C), per channel.

Training mode normalizes with the statistics of the mini-batch and updates the
running estimates; evaluation mode normalizes with the running estimates.

Conventions (differences from PyTorch):

- ``momentum`` weighs the OLD estimate, the CS231n convention:
  ``running = momentum * running + (1 - momentum) * batch``.  PyTorch's
  ``momentum`` weighs the new batch, so torch momentum = 1 - ours.
- The running variance is updated with the UNBIASED batch variance
  (``sum (x - mean)^2 / (m - 1)`` over the ``m`` values per feature), as PyTorch
  does, so running statistics are interchangeable; the normalization itself uses
  the biased variance (divide by ``m``), as in the paper and in PyTorch.

Batch sums are written ``ones @ a``: a GEMV is faster than ``a.sum(0)`` and more
accurate in float32.

How the training pass is computed (issue 12: it ran at a fraction of memory speed):

- the statistics in one pass: ``ones @ x`` and ``ones @ x*x`` give the mean and the
  variance ``E[x^2] - mean^2``.  That form cancels when a channel's mean is large
  against its spread, so a batch where any channel has ``mean^2 > 16 var`` is
  centred first (two passes, exact); at most 4 bits are lost otherwise;
- the output is one per-channel affine map ``x * s + t`` (``s = gamma / std``,
  ``t = beta - mean * s``); the cache keeps ``x`` itself (the caller's array, never
  written) instead of a normalized copy, so a training forward makes one array;
- the backward is fused to ``dx = k * (dout - x * u + v)`` with per-channel ``k``, ``u``,
  ``v`` from two GEMV sums;
- every elementwise pass works on a wide view of the array: rows of several thousand
  values against per-channel vectors tiled to the row length.  Broadcasting a (C,)
  vector over (M, C) runs NumPy's inner loop C values at a time, 3-6x slower at 16
  channels than the same pass over wide rows;
- the passes are split over those rows on dlcore's thread pool (:mod:`dlcore.parallel`);
  the sums stay whole GEMVs, so the numbers do not depend on the thread count.
"""

from __future__ import annotations

import functools
from typing import ClassVar

from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo
from dlcore.config import Config
from dlcore.errors import ConfigError
from dlcore.layout import shape_to_public
from dlcore.parallel import parallel_over_batch

#: Values per row of the wide view (about 64 KB of float32: in cache with its tiled vectors).
WIDE_ROW = 16384

#: A channel whose mean^2 exceeds this many variances is centred before its variance is
#: taken: E[x^2] - mean^2 would lose log2(1 + ratio) bits to cancellation.
CENTRE_RATIO = 16.0


def _batch_sum(a):
    """Sum of a (M, D) array over its rows as one GEMV: ones (M,) @ a."""
    return xp.ones(a.shape[0], dtype=a.dtype) @ a


@functools.lru_cache(maxsize=256)
def _repeats(m, d):
    """How many (D,) rows of a contiguous (M, D) array make one wide row: k divides M, k * D <= WIDE_ROW."""
    k = max(1, min(m, WIDE_ROW // max(d, 1)))
    while m % k:
        k -= 1
    return k


class _Wide:
    """Wide views of (M, D) arrays and per-feature vectors tiled to their row length."""

    def __init__(self, m, d):
        self.k = _repeats(m, d)
        self.rows, self.width = m // self.k, self.k * d

    def view(self, a):
        return a.reshape(self.rows, self.width)

    def tile(self, v, dtype):
        return xp.tile(xp.asarray(v, dtype=dtype), self.k)

    def run(self, fn, itemsize):
        """fn(start, stop) over the wide rows, on dlcore's pool when the work is large.

        (Cutting the pieces into cache-sized blocks, so that a fused sequence of passes
        finds its block in L2, measured no faster.)
        """
        parallel_over_batch(fn, self.rows, bytes_per_item=self.width * itemsize)


def _affine_into(out, x, scale, shift, wide):
    """out = x * scale + shift per feature, on wide rows (out may not alias x)."""
    xw, ow = wide.view(x), wide.view(out)
    s, t = wide.tile(scale, x.dtype), wide.tile(shift, x.dtype)

    def rows(i, j):
        xp.multiply(xw[i:j], s, out=ow[i:j])
        ow[i:j] += t

    wide.run(rows, x.itemsize)


def batchnorm_train_forward(x, gamma, beta, eps):
    """Normalize each feature of x with the statistics of the batch.

    Inputs:
    - x: (M, D) values; each column is normalized over its M entries.
    - gamma: (D,) scale.
    - beta: (D,) shift.
    - eps: added to the variance for numerical stability.

    Returns:
    - out: (M, D) gamma * (x - mean) / sqrt(var + eps) + beta.
    - cache: (xs, shift, gamma, inv_std, mean, var): ``xs`` is x (or x - mean when the
      batch was centred, then ``shift`` is the mean, else zeros), the batch mean and the
      biased batch variance, all vectors (D,).
    """
    x = xp.ascontiguousarray(x)
    m, d = x.shape
    wide = _Wide(m, d)
    xw = wide.view(x)
    out = xp.empty_like(x)
    ow = wide.view(out)

    def squares(i, j):
        xp.multiply(xw[i:j], xw[i:j], out=ow[i:j])

    wide.run(squares, x.itemsize)
    # The small (D,) arithmetic in float64: it costs nothing and keeps the subtraction exact.
    mean = _batch_sum(x).astype(xp.float64) / m
    var = _batch_sum(out).astype(xp.float64) / m - mean * mean
    shift = xp.zeros(d)
    xs = x
    if bool(xp.any(mean * mean > CENTRE_RATIO * xp.maximum(var, 0.0))):
        # Large means: centre first, then the variance is a sum of small squares (two passes).
        xs = xp.empty_like(x)
        mean_t = wide.tile(mean, x.dtype)
        xsw = wide.view(xs)

        def centre(i, j):
            xp.subtract(xw[i:j], mean_t, out=xsw[i:j])
            xp.multiply(xsw[i:j], xsw[i:j], out=ow[i:j])

        wide.run(centre, x.itemsize)
        centred = mean.astype(x.dtype).astype(xp.float64)  # what was subtracted, exactly
        resid = _batch_sum(xs).astype(xp.float64) / m  # the rounding left in the centred mean
        var = _batch_sum(out).astype(xp.float64) / m - resid * resid
        mean, shift = centred + resid, centred
    var = xp.maximum(var, 0.0)
    inv_std = 1.0 / xp.sqrt(var + eps)
    scale = gamma * inv_std
    _affine_into(out, xs, scale, beta - (mean - shift) * scale, wide)
    return out, (xs, shift, gamma, inv_std, mean, var)


def batchnorm_train_backward(dout, cache):
    """Backward pass of :func:`batchnorm_train_forward`, through the batch statistics.

    Inputs:
    - dout: (M, D) upstream gradient.
    - cache: from the forward pass.

    Returns:
    - dx: (M, D), dgamma: (D,), dbeta: (D,).
    """
    xs, shift, gamma, inv_std, mean, _ = cache
    dout = xp.ascontiguousarray(dout)
    m, d = dout.shape
    wide = _Wide(m, d)
    centre = mean - shift  # the mean of xs
    dx = xp.empty_like(dout)
    xw, dw, dxw = wide.view(xs), wide.view(dout), wide.view(dx)

    def products(i, j):
        xp.multiply(dw[i:j], xw[i:j], out=dxw[i:j])

    wide.run(products, dout.itemsize)
    dbeta64 = _batch_sum(dout).astype(xp.float64)
    # sum dout * xhat = inv_std * (sum dout * xs - mean(xs) * sum dout)
    dgamma64 = inv_std * (_batch_sum(dx).astype(xp.float64) - centre * dbeta64)
    # The simplified chain rule (CS231n's batchnorm_backward_alt),
    # dx = gamma * inv_std * (dout - (xhat * dgamma + dbeta) / m), with xhat = (xs - centre) * inv_std,
    # is dx = k * (dout - xs * u + v) per feature: four passes, no temporary.
    k = gamma * inv_std
    u = inv_std * dgamma64 / m
    v = centre * u - dbeta64 / m
    u_t, v_t, k_t = (wide.tile(a, dout.dtype) for a in (u, v, k))

    def grads(i, j):
        piece = dxw[i:j]
        xp.multiply(xw[i:j], u_t, out=piece)
        xp.subtract(dw[i:j], piece, out=piece)
        piece += v_t
        piece *= k_t

    wide.run(grads, dout.itemsize)
    return dx, dgamma64.astype(dout.dtype), dbeta64.astype(dout.dtype)


def batchnorm_eval_forward(x, gamma, beta, running_mean, running_var, eps):
    """Normalize each feature of x with fixed (running) statistics: an affine map per feature.

    Inputs:
    - x: (M, D); gamma, beta, running_mean, running_var: (D,); eps: float.

    Returns:
    - out: (M, D) gamma * (x - running_mean) / sqrt(running_var + eps) + beta.
    - cache: (x, mean, gamma, inv_std), copies of the statistics (a value: the layer's
      running statistics change in the next training step).
    """
    x = xp.ascontiguousarray(x)
    mean = xp.array(running_mean, dtype=xp.float64)
    inv_std = 1.0 / xp.sqrt(xp.asarray(running_var, dtype=xp.float64) + eps)
    scale = gamma * inv_std
    out = xp.empty_like(x)
    _affine_into(out, x, scale, beta - mean * scale, _Wide(*x.shape))
    return out, (x, mean, gamma, inv_std)


def batchnorm_eval_backward(dout, cache):
    """Backward pass of :func:`batchnorm_eval_forward` (the statistics are constants).

    Inputs:
    - dout: (M, D) upstream gradient; cache: from the forward pass.

    Returns:
    - dx: (M, D), dgamma: (D,), dbeta: (D,).
    """
    x, mean, gamma, inv_std = cache
    dx = dout * (gamma * inv_std).astype(dout.dtype)
    xhat = (x - mean.astype(x.dtype)) * inv_std.astype(x.dtype)
    return dx, _batch_sum(dout * xhat), _batch_sum(dout)


class BatchNormConfig(Config):
    momentum: float = Field(
        0.9,
        ge=0.0,
        lt=1.0,
        description="weight of the old running estimate: running = momentum * running + "
        "(1 - momentum) * batch (PyTorch's momentum is 1 - this)",
    )
    eps: float = Field(1e-5, gt=0.0, description="added to the variance before the square root")


class _BatchNormBase(Layer):
    """Shared lifecycle of both batchnorms: they differ in the input rank only."""

    Config: ClassVar[type[Config]] = BatchNormConfig
    mode_dependent: ClassVar[bool] = True
    #: forward returns a new array and keeps none of it in the cache (which holds the
    #: input): a residual block may write its sum into the output (see layers/residual.py).
    fresh_output: ClassVar[bool] = True
    examples: ClassVar[tuple[dict, ...]] = ({}, {"momentum": 0.5, "eps": 1e-3})

    def _channels(self, in_shape) -> int:
        raise NotImplementedError

    def infer(self, in_shape):
        channels = self._channels(tuple(in_shape))
        # subtract mean, divide, scale, shift per value (training adds the statistics, same order).
        return ShapeInfo.same_shape(in_shape, flops_per_value=4, params=2 * channels)

    def build(self, in_shape, rng, dtype=xp.float32, initializer=None):
        super().build(in_shape, rng, dtype, initializer)
        channels = self._channels(tuple(in_shape))
        self.params = {"gamma": xp.ones(channels, dtype=dtype), "beta": xp.zeros(channels, dtype=dtype)}
        self.grads = {k: xp.zeros_like(v) for k, v in self.params.items()}
        self.state = {
            "running_mean": xp.zeros(channels, dtype=dtype),
            "running_var": xp.ones(channels, dtype=dtype),
        }

    def forward(self, x, training=False, rng=None):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])  # NHWC: channels last, so a free reshape to (N*H*W, C)
        gamma, beta = self.params["gamma"], self.params["beta"]
        eps = self.config.eps
        if training:
            out, cache = batchnorm_train_forward(x2, gamma, beta, eps)
            _, _, _, _, mean, var = cache
            m = x2.shape[0]
            unbiased = var * (m / max(m - 1, 1))
            mom = self.config.momentum
            rm, rv = self.state["running_mean"], self.state["running_var"]
            rm *= mom
            rm += (1.0 - mom) * mean.astype(rm.dtype, copy=False)
            rv *= mom
            rv += (1.0 - mom) * unbiased.astype(rv.dtype, copy=False)
        else:
            out, cache = batchnorm_eval_forward(
                x2, gamma, beta, self.state["running_mean"], self.state["running_var"], eps
            )
        self.cache = (training, shape, cache)
        return out.reshape(shape)

    def backward(self, dout):
        training, shape, cache = self.cache
        d2 = dout.reshape(-1, shape[-1])
        if training:
            dx, dgamma, dbeta = batchnorm_train_backward(d2, cache)
        else:
            dx, dgamma, dbeta = batchnorm_eval_backward(d2, cache)
        self.grads = {"gamma": dgamma, "beta": dbeta}
        return dx.reshape(shape)


class BatchNorm(_BatchNormBase):
    """Batch normalization of vectors (N, D), each feature over the batch."""

    name: ClassVar[str] = "batchnorm"
    summary: ClassVar[str] = "batch normalization of vectors (N, D): each feature over the batch, learned scale and shift"
    example_shapes: ClassVar[tuple] = ((6,), (3,))

    def _channels(self, in_shape):
        if len(in_shape) != 1:
            raise ConfigError(
                "type",
                f"batchnorm: expects vectors (D,), got per-sample shape {shape_to_public(in_shape)}; "
                "use spatial_batchnorm for images or flatten first",
            )
        return int(in_shape[0])


class SpatialBatchNorm(_BatchNormBase):
    """Batch normalization of images (N, H, W, C), each channel over (N, H, W)."""

    name: ClassVar[str] = "spatial_batchnorm"
    summary: ClassVar[str] = "batch normalization of images: each channel over batch and positions, learned scale and shift"
    example_shapes: ClassVar[tuple] = ((3, 3, 2), (2, 4, 3))

    def _channels(self, in_shape):
        if len(in_shape) != 3:
            raise ConfigError(
                "type",
                f"spatial_batchnorm: expects images (C, H, W), got per-sample shape {shape_to_public(in_shape)}; "
                "use batchnorm for vectors",
            )
        return int(in_shape[-1])
