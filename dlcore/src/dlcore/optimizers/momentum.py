"""SGD with momentum, CS231n convention: v = mu * v - lr * dw; w += v.

The velocity accumulates a decaying sum of past steps, which damps the zig-zag
across ill-conditioned directions and carries the parameters through flat
regions.  See ``dlcore.optimizers`` for how it relates to torch's form.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Optimizer
from dlcore.config import Config


def momentum_update(
    w: np.ndarray, dw: np.ndarray, slots: dict, lr: float, momentum: float = 0.9
) -> None:
    """One momentum step.

    Inputs:
    - w: parameter array, updated in place.
    - dw: its gradient, same shape.
    - slots: holds ``velocity`` (shape of w, zeros at first).
    - lr: learning rate.
    - momentum: mu, the fraction of the velocity kept each step.
    """
    v = slots.get("velocity")
    if v is None:
        v = slots["velocity"] = xp.zeros_like(w)
    v *= momentum
    v -= lr * dw
    w += v


class MomentumConfig(Config):
    lr: float = Field(1e-2, gt=0, description="Base learning rate.")
    momentum: float = Field(
        0.9, ge=0, lt=1, description="Fraction mu of the velocity kept each step."
    )


class Momentum(Optimizer):
    """SGD with momentum: v = mu * v - lr * dw; w += v."""

    name: ClassVar[str] = "momentum"
    slots_per_param: ClassVar[int] = 1  # arrays the shape of each parameter: velocity
    summary: ClassVar[str] = "SGD with momentum (CS231n form): v = mu*v - lr*dw; w += v."
    Config: ClassVar[type[Config]] = MomentumConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"lr": 0.05, "momentum": 0.5})

    def update(self, w: np.ndarray, dw: np.ndarray, slots: dict, lr: float) -> None:
        momentum_update(w, dw, slots, lr, self.config.momentum)
