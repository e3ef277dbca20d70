"""Nesterov momentum, CS231n convention.

CS231n writes it on the "look-ahead" parameters: ``v_prev = v; v = mu * v -
lr * dw; w += -mu * v_prev + (1 + mu) * v``.  Since ``mu * v_prev = v + lr *
dw`` the step is ``mu * v - lr * dw`` with the new v, which needs no copy of
the old velocity.  With a constant lr it equals torch's ``SGD(nesterov=True)``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from dlcore.backend import xp
from dlcore.component import Optimizer
from dlcore.config import Config
from dlcore.optimizers.momentum import MomentumConfig


def nesterov_update(
    w: np.ndarray, dw: np.ndarray, slots: dict, lr: float, momentum: float = 0.9
) -> None:
    """One Nesterov momentum step.

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
    w += momentum * v
    w -= lr * dw


# The same two parameters as momentum's, under the optimizer's own schema title.
class NesterovConfig(MomentumConfig):
    pass


class Nesterov(Optimizer):
    """Nesterov momentum: the gradient step is corrected by where the velocity is heading."""

    name: ClassVar[str] = "nesterov"
    slots_per_param: ClassVar[int] = 1  # arrays the shape of each parameter: velocity
    summary: ClassVar[str] = "Nesterov momentum (CS231n form): w += -mu*v_prev + (1 + mu)*v."
    Config: ClassVar[type[Config]] = NesterovConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"lr": 0.05, "momentum": 0.5})

    def update(self, w: np.ndarray, dw: np.ndarray, slots: dict, lr: float) -> None:
        nesterov_update(w, dw, slots, lr, self.config.momentum)
