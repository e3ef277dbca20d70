"""DropConnect: an affine layer whose individual weights are dropped while training.

Training: ``out = x @ (W * mask) + b`` with a keep-mask over W's entries, kept
with probability 1 - p and scaled by 1 / (1 - p) (inverted, like dropout), so
evaluation uses the full weights unchanged.  One mask is drawn per forward pass
(per mini-batch), shared by the samples of the batch: a mask per sample would
cost N times the weights in memory (Wan et al. 2013 draw one per sample).

Input of any per-sample shape is flattened to (N, D), as ``affine`` does.
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
from dlcore.layers.dropout import dropout_mask, require_rng


def dropconnect_forward(x, w, b, mask):
    """Affine map with masked weights.

    Inputs:
    - x: (N, D) inputs.
    - w: (D, M) weights.
    - b: (M,) biases.
    - mask: (D, M) scaled keep-mask (1 / (1 - p) or 0), or None for the full weights.

    Returns:
    - out: (N, M) x @ (w * mask) + b.
    - cache: (x, w_used, mask).
    """
    w_used = w if mask is None else w * mask
    out = x @ w_used + b
    return out, (x, w_used, mask)


def dropconnect_backward(dout, cache):
    """Backward pass of :func:`dropconnect_forward`.

    Inputs:
    - dout: (N, M) upstream gradient; cache: from the forward pass.

    Returns:
    - dx: (N, D), dw: (D, M) (zero where the weight was dropped), db: (M,).
    """
    x, w_used, mask = cache
    dx = dout @ w_used.T
    dw = x.T @ dout
    if mask is not None:
        dw *= mask
    db = xp.ones(dout.shape[0], dtype=dout.dtype) @ dout
    return dx, dw, db


class DropConnectConfig(Config):
    units: int = Field(..., ge=1, description="number of output units M")
    p: float = Field(0.5, ge=0.0, lt=1.0, description="probability of DROPPING each weight, in [0, 1)")


class DropConnect(Layer):
    """A fully connected layer with DropConnect on its weight matrix."""

    name: ClassVar[str] = "dropconnect"
    summary: ClassVar[str] = "affine layer whose weights are each dropped with probability p in training (full weights in evaluation)"
    Config: ClassVar[type[Config]] = DropConnectConfig
    regularized: ClassVar[tuple[str, ...]] = ("W",)
    stochastic: ClassVar[bool] = True
    mode_dependent: ClassVar[bool] = True
    examples: ClassVar[tuple[dict, ...]] = ({"units": 4}, {"units": 3, "p": 0.2})
    example_shapes: ClassVar[tuple] = ((6,), (2, 2, 2))

    def infer(self, in_shape):
        d = math.prod(int(s) for s in in_shape)
        m = self.config.units
        return ShapeInfo(out_shape=(m,), params=d * m + m, flops=2 * d * m + m)

    def build(self, in_shape, rng, dtype=np.float32, initializer=None):
        super().build(in_shape, rng, dtype, initializer)
        d = math.prod(int(s) for s in in_shape)
        m = self.config.units
        w = draw_weights(initializer, (d, m), d, m, rng, dtype)
        self.params = {"W": w, "b": xp.zeros(m, dtype=dtype)}
        self.grads = {k: xp.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x, training=False, rng=None):
        x2 = x.reshape(x.shape[0], -1)
        w = self.params["W"]
        mask = None
        if training:
            require_rng(self.name, rng)
            mask = dropout_mask(w.shape, self.config.p, rng, w.dtype)
        out, cache = dropconnect_forward(x2, w, self.params["b"], mask)
        self.cache = (x.shape, cache)
        return out

    def backward(self, dout):
        x_shape, cache = self.cache
        dx, dw, db = dropconnect_backward(dout, cache)
        self.grads = {"W": dw, "b": db}
        return dx.reshape(x_shape)
