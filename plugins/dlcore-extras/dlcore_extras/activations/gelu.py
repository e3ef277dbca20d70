"""GELU activation in its tanh approximation (Hendrycks and Gimpel 2016).

gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), which is PyTorch's
``gelu(x, approximate="tanh")``.  It is not the exact form x * Phi(x) (with erf):
NumPy has no vectorized erf, and the two differ by less than 1e-3.
"""

from __future__ import annotations

import math
from typing import ClassVar

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CUBIC = 0.044715


def gelu_forward(x):
    """Elementwise GELU, tanh approximation.

    Inputs:
    - x: any shape, e.g. (N, D) or (N, H, W, C).

    Returns:
    - out: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), shaped like x.
    - cache: (x, t) with t = tanh(u).
    """
    t = xp.tanh(SQRT_2_OVER_PI * (x + CUBIC * x * x * x))
    return 0.5 * x * (1.0 + t), (x, t)


def gelu_backward(dout, cache):
    """Backward pass of :func:`gelu_forward`.

    Inputs:
    - dout: upstream gradient shaped like x; cache: from the forward pass.

    Returns:
    - dx: dout * (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)).
    """
    x, t = cache
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x * x)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


class GELU(Layer):
    """Gaussian error linear unit, tanh approximation."""

    name: ClassVar[str] = "gelu"
    summary: ClassVar[str] = "GELU, tanh approximation 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))) as torch approximate='tanh'"
    example_shapes: ClassVar[tuple] = ((6,), (3, 3, 2))

    def infer(self, in_shape):
        size = 1
        for s in in_shape:
            size *= int(s)
        return ShapeInfo(out_shape=tuple(int(s) for s in in_shape), flops=10 * size)

    def forward(self, x, training=False, rng=None):
        out, self.cache = gelu_forward(x)
        return out

    def backward(self, dout):
        return gelu_backward(dout, self.cache)
