"""Adagrad: per-parameter step sizes from the running sum of squared gradients.

cache += dw^2; w -= lr * dw / (sqrt(cache) + eps).  Parameters with large past
gradients take smaller steps; the steps only ever shrink.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Optimizer
from dlcore.config import Config


def adagrad_update(
    w: np.ndarray, dw: np.ndarray, slots: dict, lr: float, eps: float = 1e-8
) -> None:
    """One Adagrad step.

    Inputs:
    - w: parameter array, updated in place.
    - dw: its gradient, same shape.
    - slots: holds ``cache``, the sum of squared gradients (zeros at first).
    - lr: learning rate.
    - eps: added to the root of the cache to avoid dividing by zero.
    """
    cache = slots.get("cache")
    if cache is None:
        cache = slots["cache"] = xp.zeros_like(w)
    cache += dw * dw
    denom = xp.sqrt(cache)
    denom += eps
    xp.divide(dw, denom, out=denom)
    denom *= lr
    w -= denom


class AdagradConfig(Config):
    lr: float = Field(1e-2, gt=0, description="Base learning rate.")
    eps: float = Field(1e-8, gt=0, description="Added to sqrt(cache) to avoid dividing by zero.")


class Adagrad(Optimizer):
    """Adagrad: divides each step by the root of the sum of that parameter's squared gradients."""

    name: ClassVar[str] = "adagrad"
    slots_per_param: ClassVar[int] = 1  # arrays the shape of each parameter: cache
    summary: ClassVar[str] = "Adagrad: cache += dw^2; w -= lr * dw / (sqrt(cache) + eps)."
    Config: ClassVar[type[Config]] = AdagradConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"lr": 0.1, "eps": 1e-6})

    def update(self, w: np.ndarray, dw: np.ndarray, slots: dict, lr: float) -> None:
        adagrad_update(w, dw, slots, lr, self.config.eps)
