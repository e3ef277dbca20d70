"""Adam: momentum on the gradient and RMSProp on its square, both bias-corrected.

m = beta1 * m + (1 - beta1) * dw;  v = beta2 * v + (1 - beta2) * dw^2;
t += 1;  w -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps).
The bias correction undoes the pull of the zero-initialized moments towards 0
during the first steps.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Optimizer
from dlcore.config import Config


def adam_update(
    w: np.ndarray,
    dw: np.ndarray,
    slots: dict,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> None:
    """One bias-corrected Adam step.

    Inputs:
    - w: parameter array, updated in place.
    - dw: its gradient, same shape.
    - slots: holds ``m`` and ``v`` (first and second moments, shape of w, zeros
      at first) and ``t``, this parameter's step count (a 0-d integer array).
    - lr: learning rate.
    - beta1: decay of the first moment.
    - beta2: decay of the second moment.
    - eps: added to the root of the corrected second moment.
    """
    m = slots.get("m")
    if m is None:
        m = slots["m"] = xp.zeros_like(w)
        slots["v"] = xp.zeros_like(w)
        slots["t"] = xp.zeros((), dtype=xp.int64)
    v = slots["v"]
    slots["t"] += 1
    t = int(slots["t"])

    m *= beta1
    m += (1 - beta1) * dw
    v *= beta2
    v += (1 - beta2) * (dw * dw)

    # Written as torch writes it, so the two agree to rounding.
    bias_correction1 = 1 - beta1**t
    bias_correction2 = 1 - beta2**t
    denom = xp.sqrt(v)
    denom /= math.sqrt(bias_correction2)
    denom += eps
    xp.divide(m, denom, out=denom)
    denom *= lr / bias_correction1
    w -= denom


class AdamConfig(Config):
    lr: float = Field(1e-3, gt=0, description="Base learning rate.")
    beta1: float = Field(
        0.9, ge=0, lt=1, description="Decay rate of the first-moment (mean) estimate."
    )
    beta2: float = Field(
        0.999,
        ge=0,
        lt=1,
        description="Decay rate of the second-moment (uncentred variance) estimate.",
    )
    eps: float = Field(
        1e-8, gt=0, description="Added to the root of the second moment to avoid dividing by zero."
    )


class Adam(Optimizer):
    """Adam: bias-corrected moving averages of the gradient and its square."""

    name: ClassVar[str] = "adam"
    slots_per_param: ClassVar[int] = 2  # arrays the shape of each parameter: m and v
    summary: ClassVar[str] = (
        "Adam: bias-corrected first and second moment estimates (Kingma and Ba)."
    )
    Config: ClassVar[type[Config]] = AdamConfig
    examples: ClassVar[tuple[dict, ...]] = (
        {},
        {"lr": 0.01, "beta1": 0.5, "beta2": 0.9, "eps": 1e-6},
    )

    def update(self, w: np.ndarray, dw: np.ndarray, slots: dict, lr: float) -> None:
        adam_update(w, dw, slots, lr, self.config.beta1, self.config.beta2, self.config.eps)
