"""SiLU (swish) activation: x * sigmoid(x)."""

from __future__ import annotations

from typing import ClassVar

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo


def stable_sigmoid(x):
    """1 / (1 + exp(-x)) without overflow for large |x|, in x's dtype."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def silu_forward(x):
    """Elementwise x * sigmoid(x).

    Inputs:
    - x: any shape, e.g. (N, D) or (N, H, W, C).

    Returns:
    - out: shaped like x.
    - cache: (x, s) with s = sigmoid(x).
    """
    s = stable_sigmoid(x)
    return x * s, (x, s)


def silu_backward(dout, cache):
    """Backward pass of :func:`silu_forward`.

    Inputs:
    - dout: upstream gradient shaped like x; cache: from the forward pass.

    Returns:
    - dx: dout * s (1 + x (1 - s)).
    """
    x, s = cache
    return dout * s * (1.0 + x * (1.0 - s))


class SiLU(Layer):
    """Sigmoid-weighted linear unit (swish with beta = 1)."""

    name: ClassVar[str] = "silu"
    summary: ClassVar[str] = "x * sigmoid(x) (swish): smooth, non-monotonic, unbounded above"
    example_shapes: ClassVar[tuple] = ((6,), (3, 3, 2))

    def infer(self, in_shape):
        size = 1
        for s in in_shape:
            size *= int(s)
        return ShapeInfo(out_shape=tuple(int(s) for s in in_shape), flops=5 * size)

    def forward(self, x, training=False, rng=None):
        out, self.cache = silu_forward(x)
        return out

    def backward(self, dout):
        return silu_backward(dout, self.cache)
