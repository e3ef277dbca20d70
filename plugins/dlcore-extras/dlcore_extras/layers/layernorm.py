"""Layer normalization over the last axis: per sample for vectors, per position for images.

For vectors (N, D) each sample is normalized over its D features.  For images
(N, H, W, C) each position is normalized over its C channels (the convention of
transformers and ConvNeXt, PyTorch's ``F.layer_norm(x_nhwc, (C,))``); to
normalize a whole image sample use ``groupnorm`` with ``groups: 1``.  The
statistics come from the sample itself, so training and evaluation compute the
same function and nothing is kept between batches.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo
from dlcore.config import Config


def layernorm_forward(x, gamma, beta, eps):
    """Normalize each row of x over its C entries, then scale and shift per column.

    Inputs:
    - x: (M, C) rows (samples, or samples times positions).
    - gamma: (C,) scale; beta: (C,) shift; eps: added to the variance.

    Returns:
    - out: (M, C).
    - cache: (xhat, gamma, inv_std) with inv_std (M, 1).
    """
    c = x.shape[1]
    ones = xp.ones(c, dtype=x.dtype)
    # Row sums as a GEMV (x @ ones), the transposed form of the batch sum ones @ x.
    mean = (x @ ones / c)[:, None]
    xc = x - mean
    var = ((xc * xc) @ ones / c)[:, None]
    inv_std = 1.0 / xp.sqrt(var + eps)
    xhat = xc * inv_std
    return xhat * gamma + beta, (xhat, gamma, inv_std)


def layernorm_backward(dout, cache):
    """Backward pass of :func:`layernorm_forward`.

    Inputs:
    - dout: (M, C) upstream gradient; cache: from the forward pass.

    Returns:
    - dx: (M, C), dgamma: (C,), dbeta: (C,).
    """
    xhat, gamma, inv_std = cache
    m, c = dout.shape
    rows = xp.ones(m, dtype=dout.dtype)
    cols = xp.ones(c, dtype=dout.dtype)
    dgamma = rows @ (dout * xhat)
    dbeta = rows @ dout
    dxhat = dout * gamma
    # The chain rule through the row mean and variance, as batchnorm's with the axes swapped.
    dx = (inv_std / c) * (c * dxhat - (dxhat @ cols)[:, None] - xhat * ((dxhat * xhat) @ cols)[:, None])
    return dx, dgamma, dbeta


class LayerNormConfig(Config):
    eps: float = Field(1e-5, gt=0.0, description="added to the variance before the square root")


class LayerNorm(Layer):
    """Layer normalization over the last axis with a learned scale and shift per feature."""

    name: ClassVar[str] = "layernorm"
    summary: ClassVar[str] = "layer normalization over the last axis (features, or channels per position), learned scale and shift"
    Config: ClassVar[type[Config]] = LayerNormConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"eps": 1e-3})
    example_shapes: ClassVar[tuple] = ((6,), (3, 3, 4))

    def infer(self, in_shape):
        size = 1
        for s in in_shape:
            size *= int(s)
        return ShapeInfo(out_shape=tuple(int(s) for s in in_shape), params=2 * int(in_shape[-1]), flops=8 * size)

    def build(self, in_shape, rng, dtype=xp.float32, initializer=None):
        super().build(in_shape, rng, dtype, initializer)
        c = int(in_shape[-1])
        self.params = {"gamma": xp.ones(c, dtype=dtype), "beta": xp.zeros(c, dtype=dtype)}
        self.grads = {k: xp.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x, training=False, rng=None):
        out, cache = layernorm_forward(x.reshape(-1, x.shape[-1]), self.params["gamma"], self.params["beta"], self.config.eps)
        self.cache = (x.shape, cache)
        return out.reshape(x.shape)

    def backward(self, dout):
        shape, cache = self.cache
        dx, dgamma, dbeta = layernorm_backward(dout.reshape(-1, shape[-1]), cache)
        self.grads = {"gamma": dgamma, "beta": dbeta}
        return dx.reshape(shape)
