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
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo
from dlcore.config import Config
from dlcore.errors import ConfigError
from dlcore.layout import shape_to_public


def _batch_sum(a):
    """Sum of a (M, D) array over its rows as one GEMV: ones (M,) @ a."""
    return xp.ones(a.shape[0], dtype=a.dtype) @ a


def batchnorm_train_forward(x, gamma, beta, eps):
    """Normalize each feature of x with the statistics of the batch.

    Inputs:
    - x: (M, D) values; each column is normalized over its M entries.
    - gamma: (D,) scale.
    - beta: (D,) shift.
    - eps: added to the variance for numerical stability.

    Returns:
    - out: (M, D) gamma * (x - mean) / sqrt(var + eps) + beta.
    - cache: (xhat, gamma, inv_std, mean, var) with the batch mean and the
      biased batch variance, both (D,).
    """
    m = x.shape[0]
    mean = _batch_sum(x) / m
    # Two full-size arrays in all (xhat and out), the rest in place: fresh large arrays
    # page-fault on first touch, which cost more than the arithmetic here.
    xhat = x - mean
    out = xp.multiply(xhat, xhat)
    var = _batch_sum(out) / m
    inv_std = 1.0 / xp.sqrt(var + eps)
    xhat *= inv_std
    xp.multiply(xhat, gamma, out=out)
    out += beta
    return out, (xhat, gamma, inv_std, mean, var)


def batchnorm_train_backward(dout, cache):
    """Backward pass of :func:`batchnorm_train_forward`, through the batch statistics.

    Inputs:
    - dout: (M, D) upstream gradient.
    - cache: from the forward pass.

    Returns:
    - dx: (M, D), dgamma: (D,), dbeta: (D,).
    """
    xhat, gamma, inv_std, _, _ = cache
    m = dout.shape[0]
    dbeta = _batch_sum(dout)
    dgamma = _batch_sum(dout * xhat)
    # The simplified chain rule through mean and variance (CS231n's batchnorm_backward_alt),
    # dx = gamma * inv_std * (dout - (xhat * dgamma + dbeta) / m), in one buffer.
    dx = xp.multiply(xhat, dgamma / m)
    dx += dbeta / m
    xp.subtract(dout, dx, out=dx)
    dx *= gamma * inv_std
    return dx, dgamma, dbeta


def batchnorm_eval_forward(x, gamma, beta, running_mean, running_var, eps):
    """Normalize each feature of x with fixed (running) statistics: an affine map per feature.

    Inputs:
    - x: (M, D); gamma, beta, running_mean, running_var: (D,); eps: float.

    Returns:
    - out: (M, D) gamma * (x - running_mean) / sqrt(running_var + eps) + beta.
    - cache: (xhat, gamma, inv_std).
    """
    inv_std = 1.0 / xp.sqrt(running_var + eps)
    xhat = x - running_mean
    xhat *= inv_std
    out = xhat * gamma
    out += beta
    return out, (xhat, gamma, inv_std)


def batchnorm_eval_backward(dout, cache):
    """Backward pass of :func:`batchnorm_eval_forward` (the statistics are constants).

    Inputs:
    - dout: (M, D) upstream gradient; cache: from the forward pass.

    Returns:
    - dx: (M, D), dgamma: (D,), dbeta: (D,).
    """
    xhat, gamma, inv_std = cache
    dx = dout * (gamma * inv_std)
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
            _, _, _, mean, var = cache
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
