"""Exponential decay: lr = lr0 * exp(-k t), t the fractional epoch.

Per whole epoch this multiplies the rate by exp(-k), so it equals torch's
``ExponentialLR(gamma=exp(-k))`` stepped once per epoch.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field

from dlcore.component import Schedule
from dlcore.config import Config
from dlcore.schedules import ScheduleConfig


def exponential_factor(epoch: float, k: float) -> float:
    """The exponential-decay multiplier.

    Inputs:
    - epoch: fractional epoch t.
    - k: decay rate per epoch.

    Returns:
    - factor: exp(-k t).
    """
    return math.exp(-k * epoch)


class ExponentialConfig(ScheduleConfig):
    k: float = Field(0.1, ge=0, description="Decay rate per epoch in exp(-k t).")


class Exponential(Schedule):
    """Exponential decay: lr0 * exp(-k t)."""

    name: ClassVar[str] = "exponential"
    summary: ClassVar[str] = "Exponential decay: lr0 * exp(-k t), t in epochs."
    Config: ClassVar[type[Config]] = ExponentialConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"k": 0.5, "warmup_epochs": 1})

    def factor(self, epoch: float) -> float:
        return exponential_factor(epoch, self.config.k)
