"""Inverted dropout: zero each activation with probability p while training.

Survivors are scaled by 1 / (1 - p) at training time so that the expectation of
every activation is unchanged and evaluation is the identity (no rescaling at
test time).  The mask comes from the ``rng`` passed to ``forward``, never from the
global seed.

The mask is drawn as raw 32-bit words of the generator (``bit_generator.random_raw``,
two per 64-bit draw) compared with ``p * 2**32``: the drop probability is exact to
2**-32, and it is 3-5x faster than drawing floats.  The same generator state gives the
same mask, so a resumed run draws what the uninterrupted one did.  The cache keeps it
as booleans (one byte a value).
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo
from dlcore.config import Config


def keep_mask(shape, p, rng):
    """Booleans: True (kept) with probability 1 - p, False (dropped) with probability p.

    Inputs:
    - shape: the shape of the array to drop from.
    - p: probability of dropping, in [0, 1).
    - rng: a numpy.random.Generator.

    Returns:
    - keep: bool array of ``shape``.
    """
    size = math.prod(shape)
    words = rng.bit_generator.random_raw((size + 1) // 2).view(xp.uint32)[:size]
    threshold = xp.uint32(min(round(p * 2.0**32), 2**32 - 1))
    return (words >= threshold).reshape(shape)


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
    return keep_mask(shape, p, rng) * dtype.type(1.0 / (1.0 - p))


def dropout_forward(x, keep, p):
    """Apply a keep-mask and scale the survivors.

    Inputs:
    - x: any shape, e.g. (N, D) or (N, H, W, C).
    - keep: bool, same shape, from :func:`keep_mask`.
    - p: the drop probability the mask was drawn with.

    Returns:
    - out: x * keep / (1 - p).
    - cache: (keep, 1 / (1 - p)).
    """
    scale = x.dtype.type(1.0 / (1.0 - p))
    out = xp.multiply(x, scale)
    out *= keep
    return out, (keep, scale)


def dropout_backward(dout, cache):
    """Backward pass of :func:`dropout_forward`.

    Inputs:
    - dout: upstream gradient, shaped like x; cache: (keep, scale) from the forward pass.

    Returns:
    - dx: dout * keep / (1 - p).
    """
    keep, scale = cache
    dx = xp.multiply(dout, scale)
    dx *= keep
    return dx


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
        p = self.config.p
        out, self.cache = dropout_forward(x, keep_mask(x.shape, p, rng), p)
        return out

    def backward(self, dout):
        if self.cache is None:  # evaluation mode: the identity
            return dout
        return dropout_backward(dout, self.cache)
