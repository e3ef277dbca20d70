"""PReLU activation: a leaky ReLU whose negative slope is learned per channel.

The channel is the last axis: features of (N, D) vectors, channels of
(N, H, W, C) images (PyTorch's ``nn.PReLU(num_parameters=C)`` on NCHW).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo
from dlcore.config import Config


def prelu_forward(x, alpha):
    """Elementwise x for x > 0, alpha[c] * x otherwise.

    Inputs:
    - x: (..., C), e.g. (N, D) or (N, H, W, C).
    - alpha: (C,) negative slopes.

    Returns:
    - out: shaped like x.
    - cache: (x, negative, slope): negative is 1 where x <= 0 (in x's dtype), slope is 1 or alpha[c].
    """
    negative = (x <= 0).astype(x.dtype)
    # Each entry of slope is exactly 1 or exactly alpha[c]: 0 + alpha and 1 + 0 round to
    # nothing.  The former ``1 + negative * (alpha - 1)`` rounded alpha - 1 to float32 first,
    # a relative error of 1.7e-4 at alpha = 1e-4.
    slope = negative * alpha
    slope += 1.0 - negative
    return x * slope, (x, negative, slope)


def prelu_backward(dout, cache):
    """Backward pass of :func:`prelu_forward`.

    Inputs:
    - dout: upstream gradient shaped like x; cache: from the forward pass.

    Returns:
    - dx: shaped like x.
    - dalpha: (C,) sum over every axis but the last of dout * x where x <= 0.
    """
    x, negative, slope = cache
    c = x.shape[-1]
    contrib = (dout * negative * x).reshape(-1, c)
    dalpha = xp.ones(contrib.shape[0], dtype=contrib.dtype) @ contrib
    return dout * slope, dalpha


class PReLUConfig(Config):
    init: float = Field(0.25, description="initial negative slope of every channel (PyTorch's default 0.25)")


class PReLU(Layer):
    """Parametric ReLU with one learned slope per channel (last axis)."""

    name: ClassVar[str] = "prelu"
    kinks: ClassVar[tuple[float, ...]] = (0.0,)  # the slope changes at 0
    summary: ClassVar[str] = "leaky ReLU whose negative slope is learned per channel (init 0.25)"
    Config: ClassVar[type[Config]] = PReLUConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"init": 0.1})
    example_shapes: ClassVar[tuple] = ((6,), (3, 3, 2))

    def infer(self, in_shape):
        return ShapeInfo.same_shape(in_shape, flops_per_value=3, params=int(in_shape[-1]))

    def build(self, in_shape, rng, dtype=xp.float32, initializer=None):
        super().build(in_shape, rng, dtype, initializer)
        # Slopes are not weights: they start at a constant and are not regularized.
        self.params = {"alpha": xp.full(int(in_shape[-1]), self.config.init, dtype=dtype)}
        self.grads = {"alpha": xp.zeros_like(self.params["alpha"])}

    def forward(self, x, training=False, rng=None):
        out, self.cache = prelu_forward(x, self.params["alpha"])
        return out

    def backward(self, dout):
        dx, dalpha = prelu_backward(dout, self.cache)
        self.grads = {"alpha": dalpha}
        return dx
