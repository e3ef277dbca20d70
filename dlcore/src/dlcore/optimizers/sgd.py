"""Vanilla stochastic gradient descent: w -= lr * dw."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from dlcore.component import Optimizer
from dlcore.config import Config


def sgd_update(w: np.ndarray, dw: np.ndarray, slots: dict, lr: float) -> None:
    """Step against the gradient.

    Inputs:
    - w: parameter array, updated in place.
    - dw: its gradient, same shape.
    - slots: unused (vanilla SGD keeps no state).
    - lr: learning rate.
    """
    w -= lr * dw


class SGDConfig(Config):
    lr: float = Field(1e-2, gt=0, description="Base learning rate.")


class SGD(Optimizer):
    """Vanilla SGD: w -= lr * dw."""

    name: ClassVar[str] = "sgd"
    slots_per_param: ClassVar[int] = 0  # arrays the shape of each parameter: none
    summary: ClassVar[str] = "Vanilla stochastic gradient descent: w -= lr * dw."
    Config: ClassVar[type[Config]] = SGDConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"lr": 0.1})

    def update(self, w: np.ndarray, dw: np.ndarray, slots: dict, lr: float) -> None:
        sgd_update(w, dw, slots, lr)
