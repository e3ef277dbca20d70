"""RMSProp: Adagrad with a leaky (exponentially decaying) cache, so steps do not vanish.

cache = decay_rate * cache + (1 - decay_rate) * dw^2;
w -= lr * dw / (sqrt(cache) + eps).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Optimizer
from dlcore.config import Config


def rmsprop_update(
    w: np.ndarray,
    dw: np.ndarray,
    slots: dict,
    lr: float,
    decay_rate: float = 0.99,
    eps: float = 1e-8,
) -> None:
    """One RMSProp step.

    Inputs:
    - w: parameter array, updated in place.
    - dw: its gradient, same shape.
    - slots: holds ``cache``, the moving average of squared gradients (zeros at first).
    - lr: learning rate.
    - decay_rate: fraction of the cache kept each step.
    - eps: added to the root of the cache to avoid dividing by zero.
    """
    cache = slots.get("cache")
    if cache is None:
        cache = slots["cache"] = xp.zeros_like(w)
    cache *= decay_rate
    cache += (1 - decay_rate) * (dw * dw)
    denom = xp.sqrt(cache)
    denom += eps
    xp.divide(dw, denom, out=denom)
    denom *= lr
    w -= denom


class RMSPropConfig(Config):
    lr: float = Field(1e-2, gt=0, description="Base learning rate.")
    decay_rate: float = Field(
        0.99, ge=0, lt=1, description="Fraction of the squared-gradient average kept each step."
    )
    eps: float = Field(1e-8, gt=0, description="Added to sqrt(cache) to avoid dividing by zero.")


class RMSProp(Optimizer):
    """RMSProp: divides each step by the root of a moving average of squared gradients."""

    name: ClassVar[str] = "rmsprop"
    slots_per_param: ClassVar[int] = 1  # arrays the shape of each parameter: cache
    summary: ClassVar[str] = "RMSProp: a moving average of squared gradients scales each step."
    Config: ClassVar[type[Config]] = RMSPropConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"lr": 1e-3, "decay_rate": 0.9, "eps": 1e-6})

    def update(self, w: np.ndarray, dw: np.ndarray, slots: dict, lr: float) -> None:
        rmsprop_update(w, dw, slots, lr, self.config.decay_rate, self.config.eps)
