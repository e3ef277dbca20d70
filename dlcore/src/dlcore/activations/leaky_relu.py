"""Leaky ReLU activation: x for x > 0, alpha * x otherwise."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from dlcore.component import Layer, ShapeInfo
from dlcore.config import Config


def leaky_relu_forward(x, alpha):
    """Elementwise leaky ReLU.

    Inputs:
    - x: any shape, e.g. (N, D) or (N, H, W, C).
    - alpha: slope for x <= 0.

    Returns:
    - out: x * slope, shaped like x.
    - cache: slope, 1 where x > 0 and alpha elsewhere, in x's dtype.
    """
    positive = (x > 0).astype(x.dtype)
    slope = positive * x.dtype.type(1.0 - alpha) + x.dtype.type(alpha)
    return x * slope, slope


def leaky_relu_backward(dout, cache):
    """Backward pass of :func:`leaky_relu_forward`.

    Inputs:
    - dout: upstream gradient shaped like x; cache: the slope.

    Returns:
    - dx: dout * slope.
    """
    return dout * cache


class LeakyReLUConfig(Config):
    alpha: float = Field(0.01, ge=0.0, lt=1.0, description="slope for x <= 0, in [0, 1)")


class LeakyReLU(Layer):
    """Leaky rectified linear unit with a fixed negative slope."""

    name: ClassVar[str] = "leaky_relu"
    kinks: ClassVar[tuple[float, ...]] = (0.0,)  # the slope changes at 0
    summary: ClassVar[str] = "max(alpha x, x), alpha default 0.01: a ReLU that does not die"
    Config: ClassVar[type[Config]] = LeakyReLUConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"alpha": 0.2})
    example_shapes: ClassVar[tuple] = ((6,), (3, 3, 2))

    def infer(self, in_shape):
        return ShapeInfo.same_shape(in_shape, flops_per_value=2)

    def forward(self, x, training=False, rng=None):
        out, self.cache = leaky_relu_forward(x, self.config.alpha)
        return out

    def backward(self, dout):
        return leaky_relu_backward(dout, self.cache)
