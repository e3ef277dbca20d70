"""ReLU activation: max(0, x)."""

from __future__ import annotations

from typing import ClassVar

from dlcore.component import Layer, ShapeInfo


def relu_forward(x):
    """Elementwise max(0, x).

    Inputs:
    - x: any shape, e.g. (N, D) or (N, H, W, C).

    Returns:
    - out: max(0, x), shaped like x.
    - cache: mask, 1 where x > 0 and 0 elsewhere, in x's dtype.
    """
    # Multiplying by a saved mask is several times faster in backward than np.where.
    mask = (x > 0).astype(x.dtype)
    return x * mask, mask


def relu_backward(dout, cache):
    """Backward pass of :func:`relu_forward`.

    Inputs:
    - dout: upstream gradient shaped like x; cache: the mask.

    Returns:
    - dx: dout * mask (the gradient at exactly 0 is taken as 0).
    """
    return dout * cache


class ReLU(Layer):
    """Rectified linear unit, elementwise."""

    name: ClassVar[str] = "relu"
    kinks: ClassVar[tuple[float, ...]] = (0.0,)  # the slope changes at 0
    summary: ClassVar[str] = "max(0, x): no saturation for x > 0, cheap; units can die for x < 0"
    example_shapes: ClassVar[tuple] = ((6,), (3, 3, 2))

    def infer(self, in_shape):
        return ShapeInfo.same_shape(in_shape, flops_per_value=1)

    def forward(self, x, training=False, rng=None):
        out, self.cache = relu_forward(x)
        return out

    def backward(self, dout):
        return relu_backward(dout, self.cache)
