"""Tanh activation: zero-centred squashing to (-1, 1)."""

from __future__ import annotations

from typing import ClassVar

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo


def tanh_forward(x):
    """Elementwise hyperbolic tangent.

    Inputs:
    - x: any shape, e.g. (N, D) or (N, H, W, C).

    Returns:
    - out: tanh(x), shaped like x.
    - cache: out.
    """
    out = xp.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """Backward pass of :func:`tanh_forward`.

    Inputs:
    - dout: upstream gradient shaped like x; cache: the forward output.

    Returns:
    - dx: dout * (1 - out^2).
    """
    out = cache
    return dout * (1.0 - out * out)


class Tanh(Layer):
    """Hyperbolic tangent, elementwise."""

    name: ClassVar[str] = "tanh"
    summary: ClassVar[str] = "tanh(x): squashes to (-1, 1), zero-centred, still saturates"
    example_shapes: ClassVar[tuple] = ((6,), (3, 3, 2))

    def infer(self, in_shape):
        return ShapeInfo.same_shape(in_shape, flops_per_value=4)

    def forward(self, x, training=False, rng=None):
        out, self.cache = tanh_forward(x)
        return out

    def backward(self, dout):
        return tanh_backward(dout, self.cache)
