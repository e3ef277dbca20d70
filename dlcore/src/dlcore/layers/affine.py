"""Fully connected layer: out = x W + b over the flattened input.

Flattening order: an image input (N, H, W, C) is flattened in the INTERNAL
(NHWC) order, so feature ``(h * W + w) * C + c`` of a sample is pixel (h, w),
channel c, and row of ``W`` with that index weighs it.  PyTorch flattens NCHW
(``(c * H + h) * W + w``): to load a torch ``Linear`` that follows a
``Flatten`` of an image, permute its input columns accordingly.

Weight layout: ``W`` is (D, units), the transpose of torch's ``Linear.weight``
(units, D); ``b`` is (units,).

On more than one thread each GEMM is split on dlcore's pool (:mod:`dlcore.parallel`, the
BLAS itself held at one thread): out and dx by rows of the batch, dW by rows of W.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo
from dlcore.config import Config
from dlcore.initializers import draw_weights
from dlcore.parallel import parallel_over_batch


def affine_forward(x, w, b):
    """Affine map of the flattened input.

    Inputs:
    - x: (N, d_1, ..., d_k) input; each sample is flattened (C order) to D = d_1 * ... * d_k.
    - w: (D, M) weights.
    - b: (M,) biases.

    Returns:
    - out: (N, M) x.reshape(N, D) @ w + b.
    - cache: (x2, x_shape, w) with x2 the (N, D) view of x.
    """
    x2 = x.reshape(x.shape[0], -1)
    out = xp.empty((x2.shape[0], w.shape[1]), dtype=xp.result_type(x2, w))

    def rows(i, j):
        xp.matmul(x2[i:j], w, out=out[i:j])
        out[i:j] += b

    parallel_over_batch(rows, x2.shape[0], flops_per_item=2 * w.size)
    return out, (x2, x.shape, w)


def affine_backward(dout, cache, need_input_grad=True):
    """Backward pass of :func:`affine_forward`.

    Inputs:
    - dout: (N, M) upstream gradient.
    - cache: from the forward pass.
    - need_input_grad: False skips dx (the first layer of a model needs none).

    Returns:
    - dx: gradient shaped like x, or None when need_input_grad is False.
    - dw: (D, M).
    - db: (M,).
    """
    x2, x_shape, w = cache
    dw = xp.empty(w.shape, dtype=xp.result_type(x2, dout))

    def weight_rows(i, j):
        xp.matmul(x2[:, i:j].T, dout, out=dw[i:j])

    parallel_over_batch(weight_rows, w.shape[0], flops_per_item=2 * dout.size)
    # A GEMV sums over the batch faster than dout.sum(0), and more accurately in float32.
    db = xp.ones(dout.shape[0], dtype=dout.dtype) @ dout
    if not need_input_grad:
        return None, dw, db
    dx = xp.empty((dout.shape[0], w.shape[0]), dtype=xp.result_type(dout, w))

    def input_rows(i, j):
        xp.matmul(dout[i:j], w.T, out=dx[i:j])

    parallel_over_batch(input_rows, dout.shape[0], flops_per_item=2 * w.size)
    return dx.reshape(x_shape), dw, db


class AffineConfig(Config):
    units: int = Field(..., ge=1, description="Number of outputs M (columns of W).")


class Affine(Layer):
    """Fully connected layer ``out = x W + b``; images are flattened in NHWC order first."""

    name: ClassVar[str] = "affine"
    summary: ClassVar[str] = "Fully connected layer: out = x W + b over the flattened input."
    Config: ClassVar[type[Config]] = AffineConfig
    regularized: ClassVar[tuple[str, ...]] = ("W",)
    examples: ClassVar[tuple[dict, ...]] = ({"units": 4}, {"units": 1})
    example_shapes: ClassVar[tuple[tuple[int, ...], ...]] = ((6,), (3, 3, 2))
    #: forward returns a new array and caches only its input and weights: a residual block
    #: may write into the output (see layers/residual.py).
    fresh_output: ClassVar[bool] = True

    def infer(self, in_shape):
        """Output (units,); params D*units + units; flops 2*D*units (multiply-adds) + units (bias)."""
        d = math.prod(int(s) for s in in_shape)
        units = self.config.units
        return ShapeInfo(out_shape=(units,), params=d * units + units, flops=2 * d * units + units)

    def build(self, in_shape, rng, dtype=np.float32, initializer=None):
        """W: (D, units) from the initializer with fan_in = D, fan_out = units; b: zeros."""
        super().build(in_shape, rng, dtype, initializer)
        d = math.prod(self.in_shape)
        units = self.config.units
        w = draw_weights(initializer, (d, units), d, units, rng, dtype)
        self.params = {"W": w, "b": xp.zeros(units, dtype=dtype)}
        self.grads = {}

    def forward(self, x, training=False, rng=None):
        """x: (N, D) or (N, H, W, C) -> (N, units)."""
        out, cache = affine_forward(x, self.params["W"], self.params["b"])
        self.cache = cache
        return out

    def backward(self, dout):
        """dout: (N, units) -> dx shaped like the input (None when need_input_grad is False)."""
        dx, dw, db = affine_backward(dout, self.cache, self.need_input_grad)
        self.grads = {"W": dw, "b": db}
        return dx
