"""Maxout activation: the maximum of k learned linear pieces.

Applied along the last axis: vectors (N, D) -> (N, units); images
(N, H, W, C) -> (N, H, W, units), a maxout over channels at every position (a
1x1 convolution with k pieces).  ``W`` is (C, units * k), laid out so that the
pieces of unit u are the columns u*k .. u*k + k - 1; ``b`` is (units * k,).
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


def maxout_forward(x, w, b, pieces):
    """Maximum over k affine pieces.

    Inputs:
    - x: (M, C) rows (samples, or samples times positions).
    - w: (C, U * k) weights; column u * k + j is piece j of unit u.
    - b: (U * k,) biases.
    - pieces: k.

    Returns:
    - out: (M, U), out[:, u] = max_j (x @ w + b)[:, u * k + j].
    - cache: (x, w, mask) with mask (M, U, k) one-hot at the winning piece.
    """
    z = (x @ w + b).reshape(x.shape[0], -1, pieces)
    winner = z.argmax(axis=2)
    # One-hot of the argmax (not z == max): ties send the gradient to one piece only.
    mask = (xp.arange(pieces) == winner[..., None]).astype(x.dtype)
    out = xp.take_along_axis(z, winner[..., None], axis=2)[..., 0]
    return out, (x, w, mask)


def maxout_backward(dout, cache):
    """Backward pass of :func:`maxout_forward`.

    Inputs:
    - dout: (M, U) upstream gradient; cache: from the forward pass.

    Returns:
    - dx: (M, C), dw: (C, U * k), db: (U * k,).
    """
    x, w, mask = cache
    dz = (mask * dout[..., None]).reshape(x.shape[0], -1)
    dx = dz @ w.T
    dw = x.T @ dz
    db = xp.ones(x.shape[0], dtype=dz.dtype) @ dz
    return dx, dw, db


class MaxoutConfig(Config):
    pieces: int = Field(2, ge=2, description="number k of linear pieces per unit (k times an affine's parameters)")
    units: int | None = Field(
        None, ge=1, description="output units (channels for images); default: as many as input features"
    )


class Maxout(Layer):
    """Maxout units over the last axis, with their own weights."""

    name: ClassVar[str] = "maxout"
    summary: ClassVar[str] = "max over k learned linear pieces per unit: never saturates or dies, k times the parameters"
    Config: ClassVar[type[Config]] = MaxoutConfig
    regularized: ClassVar[tuple[str, ...]] = ("W",)
    examples: ClassVar[tuple[dict, ...]] = ({}, {"pieces": 3, "units": 4})
    example_shapes: ClassVar[tuple] = ((6,), (2, 2, 3))

    def _units(self, in_shape):
        return self.config.units if self.config.units is not None else int(in_shape[-1])

    def infer(self, in_shape):
        c = int(in_shape[-1])
        u, k = self._units(in_shape), self.config.pieces
        positions = math.prod(int(s) for s in in_shape[:-1]) if len(in_shape) > 1 else 1
        out_shape = tuple(int(s) for s in in_shape[:-1]) + (u,)
        return ShapeInfo(out_shape=out_shape, params=c * u * k + u * k, flops=positions * (2 * c * u * k + 2 * u * k))

    def build(self, in_shape, rng, dtype=np.float32, initializer=None):
        super().build(in_shape, rng, dtype, initializer)
        c = int(in_shape[-1])
        uk = self._units(in_shape) * self.config.pieces
        w = draw_weights(initializer, (c, uk), c, uk, rng, dtype)
        self.params = {"W": w, "b": xp.zeros(uk, dtype=dtype)}
        self.grads = {k: xp.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x, training=False, rng=None):
        c = x.shape[-1]
        out, cache = maxout_forward(x.reshape(-1, c), self.params["W"], self.params["b"], self.config.pieces)
        self.cache = (x.shape, cache)
        return out.reshape(x.shape[:-1] + (out.shape[-1],))

    def backward(self, dout):
        x_shape, cache = self.cache
        dx, dw, db = maxout_backward(dout.reshape(-1, dout.shape[-1]), cache)
        self.grads = {"W": dw, "b": db}
        return dx.reshape(x_shape)
