"""Step decay: multiply the rate by ``gamma`` every ``step_size`` epochs.

lr = lr0 * gamma ** floor(t / step_size), t the fractional epoch.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field

from dlcore.component import Schedule
from dlcore.config import Config
from dlcore.schedules import ScheduleConfig

# t comes from iteration / iterations_per_epoch; without this slack 0.3 * 10 / 0.3 could
# floor to 9 and move a boundary by one iteration.
_BOUNDARY_SLACK = 1e-9


def step_factor(epoch: float, step_size: float, gamma: float) -> float:
    """The step-decay multiplier.

    Inputs:
    - epoch: fractional epoch t.
    - step_size: epochs between two decays.
    - gamma: multiplier applied at each decay.

    Returns:
    - factor: gamma ** floor(t / step_size).
    """
    return gamma ** math.floor(epoch / step_size + _BOUNDARY_SLACK)


class StepConfig(ScheduleConfig):
    step_size: float = Field(10.0, gt=0, description="Epochs between two decays.")
    gamma: float = Field(
        0.1, gt=0, le=1, description="Multiplier applied to the rate at each decay."
    )


class Step(Schedule):
    """Step decay: lr0 * gamma ** floor(t / step_size)."""

    name: ClassVar[str] = "step"
    summary: ClassVar[str] = "Step decay: multiply the rate by gamma every step_size epochs."
    Config: ClassVar[type[Config]] = StepConfig
    examples: ClassVar[tuple[dict, ...]] = (
        {},
        {"step_size": 2, "gamma": 0.5, "warmup_epochs": 0.5},
    )

    def factor(self, epoch: float) -> float:
        return step_factor(epoch, self.config.step_size, self.config.gamma)
