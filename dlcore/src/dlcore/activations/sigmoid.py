"""Sigmoid activation: 1 / (1 + exp(-x)), computed without overflow."""

from __future__ import annotations

from typing import ClassVar

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo


def sigmoid_forward(x):
    """Elementwise logistic function, stable for large |x|.

    Inputs:
    - x: any shape, e.g. (N, D) or (N, H, W, C).

    Returns:
    - out: 1 / (1 + exp(-x)), shaped like x.
    - cache: out.
    """
    # exp(-|x|) never overflows; the two branches are the same function rearranged.
    e = xp.exp(-xp.abs(x))
    out = xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)
    return out, out


def sigmoid_backward(dout, cache):
    """Backward pass of :func:`sigmoid_forward`.

    Inputs:
    - dout: upstream gradient shaped like x; cache: the forward output.

    Returns:
    - dx: dout * out * (1 - out).
    """
    out = cache
    return dout * out * (1.0 - out)


class Sigmoid(Layer):
    """Logistic sigmoid, elementwise."""

    name: ClassVar[str] = "sigmoid"
    summary: ClassVar[str] = "1 / (1 + exp(-x)): squashes to (0, 1); saturates and is not zero-centred"
    example_shapes: ClassVar[tuple] = ((6,), (3, 3, 2))

    def infer(self, in_shape):
        return ShapeInfo.same_shape(in_shape, flops_per_value=4)

    def forward(self, x, training=False, rng=None):
        out, self.cache = sigmoid_forward(x)
        return out

    def backward(self, dout):
        return sigmoid_backward(dout, self.cache)
