"""Inverse-time (1/t) decay: lr = lr0 / (1 + k t), t the fractional epoch."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from dlcore.component import Schedule
from dlcore.config import Config
from dlcore.schedules import ScheduleConfig


def inverse_time_factor(epoch: float, k: float) -> float:
    """The inverse-time decay multiplier.

    Inputs:
    - epoch: fractional epoch t.
    - k: decay rate per epoch.

    Returns:
    - factor: 1 / (1 + k t).
    """
    return 1.0 / (1.0 + k * epoch)


class InverseTimeConfig(ScheduleConfig):
    k: float = Field(0.1, ge=0, description="Decay rate per epoch in 1 / (1 + k t).")


class InverseTime(Schedule):
    """Inverse-time decay: lr0 / (1 + k t)."""

    name: ClassVar[str] = "inverse_time"
    summary: ClassVar[str] = "Inverse-time (1/t) decay: lr0 / (1 + k t), t in epochs."
    Config: ClassVar[type[Config]] = InverseTimeConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"k": 1.0, "warmup_epochs": 0.5})

    def factor(self, epoch: float) -> float:
        return inverse_time_factor(epoch, self.config.k)
