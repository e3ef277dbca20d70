"""Group normalization (Wu and He 2018) in the NHWC layout.

The C channels are split into ``groups`` consecutive groups of C / groups; each
sample's group is normalized over its positions and channels together, then
every channel gets its own scale and shift.  ``groups: 1`` normalizes a whole
sample (layer norm over the image), ``groups: C`` each channel alone (instance
norm).  Independent of the batch: training and evaluation are the same function.
Vectors (N, D) are treated as images with one position.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo
from dlcore.config import Config
from dlcore.errors import ConfigError


def groupnorm_forward(x, gamma, beta, groups, eps):
    """Normalize each (sample, group) over its positions and the group's channels.

    Inputs:
    - x: (N, P, C) with P positions (H * W) and C channels, C divisible by groups.
    - gamma: (C,) scale; beta: (C,) shift; groups: G; eps: added to the variance.

    Returns:
    - out: (N, P, C).
    - cache: (xhat, gamma, inv_std, groups) with xhat (N, P, G, C/G), inv_std (N, 1, G, 1).
    """
    n, p, c = x.shape
    xg = x.reshape(n, p, groups, c // groups)
    mean = xg.mean(axis=(1, 3), keepdims=True)
    xc = xg - mean
    var = (xc * xc).mean(axis=(1, 3), keepdims=True)
    inv_std = 1.0 / xp.sqrt(var + eps)
    xhat = xc * inv_std
    out = xhat.reshape(n, p, c) * gamma + beta
    return out, (xhat, gamma, inv_std, groups)


def groupnorm_backward(dout, cache):
    """Backward pass of :func:`groupnorm_forward`.

    Inputs:
    - dout: (N, P, C) upstream gradient; cache: from the forward pass.

    Returns:
    - dx: (N, P, C), dgamma: (C,), dbeta: (C,).
    """
    xhat, gamma, inv_std, groups = cache
    n, p, c = dout.shape
    d2 = dout.reshape(-1, c)
    ones = xp.ones(d2.shape[0], dtype=dout.dtype)
    dgamma = ones @ (d2 * xhat.reshape(-1, c))
    dbeta = ones @ d2
    dxhat = (dout * gamma).reshape(xhat.shape)
    count = p * (c // groups)  # values per (sample, group)
    dx = (inv_std / count) * (
        count * dxhat
        - dxhat.sum(axis=(1, 3), keepdims=True)
        - xhat * (dxhat * xhat).sum(axis=(1, 3), keepdims=True)
    )
    return dx.reshape(n, p, c), dgamma, dbeta


class GroupNormConfig(Config):
    groups: int = Field(
        1, ge=1, description="number G of channel groups; C must be divisible by G (1: whole sample, C: per channel)"
    )
    eps: float = Field(1e-5, gt=0.0, description="added to the variance before the square root")


class GroupNorm(Layer):
    """Group normalization over channel groups of NHWC images, learned scale and shift per channel."""

    name: ClassVar[str] = "groupnorm"
    summary: ClassVar[str] = "group normalization: each sample's channel groups over positions, learned scale and shift per channel"
    Config: ClassVar[type[Config]] = GroupNormConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"groups": 2}, {"groups": 4, "eps": 1e-3})
    example_shapes: ClassVar[tuple] = ((3, 3, 4), (2, 2, 8), (8,))

    def infer(self, in_shape):
        c = int(in_shape[-1])
        g = self.config.groups
        if c % g:
            raise ConfigError(
                "groups",
                f"groupnorm: channels {c} are not divisible by groups {g} ({c}/{g} = {c / g:g}); "
                "choose groups dividing the channel count",
            )
        size = 1
        for s in in_shape:
            size *= int(s)
        return ShapeInfo(out_shape=tuple(int(s) for s in in_shape), params=2 * c, flops=8 * size)

    def build(self, in_shape, rng, dtype=xp.float32, initializer=None):
        super().build(in_shape, rng, dtype, initializer)
        c = int(in_shape[-1])
        self.params = {"gamma": xp.ones(c, dtype=dtype), "beta": xp.zeros(c, dtype=dtype)}
        self.grads = {k: xp.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x, training=False, rng=None):
        x3 = x.reshape(x.shape[0], -1, x.shape[-1])
        out, cache = groupnorm_forward(x3, self.params["gamma"], self.params["beta"], self.config.groups, self.config.eps)
        self.cache = (x.shape, cache)
        return out.reshape(x.shape)

    def backward(self, dout):
        shape, cache = self.cache
        dx, dgamma, dbeta = groupnorm_backward(dout.reshape(shape[0], -1, shape[-1]), cache)
        self.grads = {"gamma": dgamma, "beta": dbeta}
        return dx.reshape(shape)
