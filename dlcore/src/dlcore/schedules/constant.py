"""The constant schedule: the base learning rate throughout (after the optional warm-up)."""

from __future__ import annotations

from typing import ClassVar

from dlcore.component import Schedule
from dlcore.config import Config
from dlcore.schedules import ScheduleConfig


def constant_factor(epoch: float) -> float:
    """The decay multiplier of the constant schedule: always 1.

    Inputs:
    - epoch: fractional epoch t (unused).

    Returns:
    - factor: 1.0.
    """
    return 1.0


class ConstantConfig(ScheduleConfig):
    pass


class Constant(Schedule):
    """Keeps the base learning rate (optionally after a linear warm-up)."""

    name: ClassVar[str] = "constant"
    summary: ClassVar[str] = "Constant learning rate, with optional linear warm-up."
    Config: ClassVar[type[Config]] = ConstantConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"warmup_epochs": 1.0})

    def factor(self, epoch: float) -> float:
        return constant_factor(epoch)
