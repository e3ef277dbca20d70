"""Flatten each sample to a vector, in the internal order.

An image (N, H, W, C) becomes (N, H*W*C) with feature ``(h * W + w) * C + c`` for
pixel (h, w), channel c: the NHWC order, not PyTorch's NCHW ``(c * H + h) * W + w``.
Vectors (N, D) pass through unchanged.  :class:`dlcore.layers.affine.Affine`
flattens its input the same way, so ``flatten`` before ``affine`` changes nothing.
"""

from __future__ import annotations

import math
from typing import ClassVar

from dlcore.component import Layer, ShapeInfo


def flatten_forward(x):
    """Reshape each sample to a vector.

    Inputs:
    - x: (N, d_1, ..., d_k), e.g. (N, H, W, C).

    Returns:
    - out: (N, d_1 * ... * d_k), a new array (a view would alias x: callers that keep an
      output while x changes, as gradient checks do, would see it change).
    - cache: x_shape.
    """
    return x.reshape(x.shape[0], -1).copy(), x.shape


def flatten_backward(dout, cache):
    """Backward pass of :func:`flatten_forward`.

    Inputs:
    - dout: (N, D) upstream gradient.
    - cache: x_shape.

    Returns:
    - dx: dout reshaped to x_shape.
    """
    return dout.reshape(cache)


class Flatten(Layer):
    """Flatten each sample: (N, H, W, C) -> (N, H*W*C) in NHWC order."""

    name: ClassVar[str] = "flatten"
    summary: ClassVar[str] = "Flatten each sample to a vector: (N, H, W, C) -> (N, H*W*C), NHWC order."
    examples: ClassVar[tuple[dict, ...]] = ({},)
    example_shapes: ClassVar[tuple[tuple[int, ...], ...]] = ((3, 4, 2), (5,))

    def infer(self, in_shape):
        """(H, W, C) -> (H*W*C,); no params, no flops."""
        return ShapeInfo(out_shape=(math.prod(int(s) for s in in_shape),), params=0, flops=0)

    def forward(self, x, training=False, rng=None):
        """x: (N, H, W, C) or (N, D) -> (N, H*W*C) or (N, D)."""
        out, self.cache = flatten_forward(x)
        return out

    def backward(self, dout):
        """dout: (N, D) -> dx shaped like the input."""
        return flatten_backward(dout, self.cache)
