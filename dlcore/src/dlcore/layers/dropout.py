"""Inverted dropout: zero each activation with probability p while training.

Survivors are scaled by 1 / (1 - p) at training time so that the expectation of
every activation is unchanged and evaluation is the identity (no rescaling at
test time).  The mask comes from the ``rng`` passed to ``forward``, never from the
global seed.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo
from dlcore.config import Config


def dropout_mask(shape, p, rng, dtype):
    """A scaled keep-mask: 1 / (1 - p) where kept (probability 1 - p), 0 where dropped.

    Inputs:
    - shape: the shape of the array to drop from.
    - p: probability of dropping, in [0, 1).
    - rng: a numpy.random.Generator.
    - dtype: float32 or float64.

    Returns:
    - mask: array of ``shape`` and ``dtype``.
    """
    dtype = xp.dtype(dtype)
    keep = rng.random(shape, dtype=dtype) >= p
    return keep * dtype.type(1.0 / (1.0 - p))


def dropout_forward(x, mask):
    """Apply a scaled keep-mask.

    Inputs:
    - x: any shape, e.g. (N, D) or (N, H, W, C).
    - mask: same shape, from :func:`dropout_mask`.

    Returns:
    - out: x * mask.
    - cache: mask.
    """
    return x * mask, mask


def dropout_backward(dout, cache):
    """Backward pass of :func:`dropout_forward`.

    Inputs:
    - dout: upstream gradient, shaped like x; cache: the mask.

    Returns:
    - dx: dout * mask.
    """
    return dout * cache


def require_rng(owner, rng):
    """Raise a clear error when a stochastic layer is run in training mode without a generator."""
    if rng is None:
        raise ValueError(
            f"{owner}: training mode draws a random mask and needs rng=numpy.random.Generator; "
            "got rng=None (pass the trainer's generator, or use training=False)"
        )


class DropoutConfig(Config):
    p: float = Field(0.5, ge=0.0, lt=1.0, description="probability of DROPPING each activation, in [0, 1)")


class Dropout(Layer):
    """Inverted dropout of activations, any input shape."""

    name: ClassVar[str] = "dropout"
    summary: ClassVar[str] = "inverted dropout: zero each activation with probability p in training, identity in evaluation"
    Config: ClassVar[type[Config]] = DropoutConfig
    stochastic: ClassVar[bool] = True
    mode_dependent: ClassVar[bool] = True
    examples: ClassVar[tuple[dict, ...]] = ({}, {"p": 0.2})
    example_shapes: ClassVar[tuple] = ((6,), (3, 3, 2))

    def infer(self, in_shape):
        return ShapeInfo.same_shape(in_shape, flops_per_value=1)

    def forward(self, x, training=False, rng=None):
        if not training:
            self.cache = None
            # A copy, not x itself: an output aliasing the input would let a later
            # in-place update (or a gradient check perturbing x) change both.
            return x.copy()
        require_rng(self.name, rng)
        out, self.cache = dropout_forward(x, dropout_mask(x.shape, self.config.p, rng, x.dtype))
        return out

    def backward(self, dout):
        if self.cache is None:  # evaluation mode: the identity
            return dout
        return dropout_backward(dout, self.cache)
