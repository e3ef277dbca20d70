"""ELU activation: x for x > 0, alpha * (exp(x) - 1) otherwise."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo
from dlcore.config import Config


def elu_forward(x, alpha):
    """Elementwise exponential linear unit.

    Inputs:
    - x: any shape, e.g. (N, D) or (N, H, W, C).
    - alpha: value the output tends to for x -> -inf is -alpha.

    Returns:
    - out: shaped like x.
    - cache: slope, d out / d x: 1 where x > 0, alpha * exp(x) elsewhere.
    """
    positive = x > 0
    # exp of the clipped value: never overflows, and exp(min(x, 0)) = 1 where it is not used.
    e = xp.exp(xp.minimum(x, 0))
    alpha = x.dtype.type(alpha)
    out = xp.where(positive, x, alpha * (e - 1))
    slope = xp.where(positive, x.dtype.type(1), alpha * e)
    return out, slope


def elu_backward(dout, cache):
    """Backward pass of :func:`elu_forward`.

    Inputs:
    - dout: upstream gradient shaped like x; cache: the slope.

    Returns:
    - dx: dout * slope.
    """
    return dout * cache


class ELUConfig(Config):
    alpha: float = Field(1.0, gt=0.0, description="saturation value for negative inputs is -alpha")


class ELU(Layer):
    """Exponential linear unit."""

    name: ClassVar[str] = "elu"
    kinks: ClassVar[tuple[float, ...]] = (0.0,)  # the slope changes at 0
    summary: ClassVar[str] = "x for x > 0, alpha (exp(x) - 1) otherwise: ReLU benefits with outputs closer to zero mean"
    Config: ClassVar[type[Config]] = ELUConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"alpha": 0.5})
    example_shapes: ClassVar[tuple] = ((6,), (3, 3, 2))

    def infer(self, in_shape):
        return ShapeInfo.same_shape(in_shape, flops_per_value=4)

    def forward(self, x, training=False, rng=None):
        out, self.cache = elu_forward(x, self.config.alpha)
        return out

    def backward(self, dout):
        return elu_backward(dout, self.cache)
