"""Mish activation: x * tanh(softplus(x)) (Misra 2019)."""

from __future__ import annotations

from typing import ClassVar

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo
from dlcore_extras.activations.silu import stable_sigmoid


def mish_forward(x):
    """Elementwise x * tanh(softplus(x)), softplus(x) = log(1 + exp(x)).

    Inputs:
    - x: any shape, e.g. (N, D) or (N, H, W, C).

    Returns:
    - out: shaped like x.
    - cache: (x, t) with t = tanh(softplus(x)).
    """
    # softplus(x) = max(x, 0) + log1p(exp(-|x|)): never overflows.
    softplus = xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))
    t = xp.tanh(softplus)
    return x * t, (x, t)


def mish_backward(dout, cache):
    """Backward pass of :func:`mish_forward`.

    Inputs:
    - dout: upstream gradient shaped like x; cache: from the forward pass.

    Returns:
    - dx: dout * (t + x (1 - t^2) sigmoid(x)), as d softplus / dx = sigmoid(x).
    """
    x, t = cache
    return dout * (t + x * (1.0 - t * t) * stable_sigmoid(x))


class Mish(Layer):
    """Mish: a smooth, self-gated activation."""

    name: ClassVar[str] = "mish"
    summary: ClassVar[str] = "x * tanh(softplus(x)): smooth, non-monotonic, unbounded above"
    example_shapes: ClassVar[tuple] = ((6,), (3, 3, 2))

    def infer(self, in_shape):
        size = 1
        for s in in_shape:
            size *= int(s)
        return ShapeInfo(out_shape=tuple(int(s) for s in in_shape), flops=8 * size)

    def forward(self, x, training=False, rng=None):
        out, self.cache = mish_forward(x)
        return out

    def backward(self, dout):
        return mish_backward(dout, self.cache)
