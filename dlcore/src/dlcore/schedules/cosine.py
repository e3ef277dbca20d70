"""Cosine annealing from lr0 down to ``min_factor * lr0`` over ``t_max`` epochs.

lr = lr0 * (m + (1 - m) * 0.5 * (1 + cos(pi * min(t, t_max) / t_max))), m =
min_factor; it stays at m * lr0 after t_max (no restarts).  It equals torch's
``CosineAnnealingLR(T_max=t_max, eta_min=m * lr0)`` up to t_max.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field

from dlcore.component import Schedule
from dlcore.config import Config
from dlcore.schedules import ScheduleConfig


def cosine_factor(epoch: float, t_max: float, min_factor: float = 0.0) -> float:
    """The cosine-annealing multiplier.

    Inputs:
    - epoch: fractional epoch t.
    - t_max: epochs to anneal over.
    - min_factor: the multiplier reached at t_max and kept afterwards.

    Returns:
    - factor: min_factor + (1 - min_factor) * 0.5 * (1 + cos(pi * min(t, t_max) / t_max)).
    """
    progress = min(epoch, t_max) / t_max
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class CosineConfig(ScheduleConfig):
    t_max: float = Field(
        ..., gt=0, description="Epochs over which the rate anneals (usually the training length)."
    )
    min_factor: float = Field(
        0.0, ge=0, le=1, description="Fraction of the base rate reached at t_max and kept after."
    )


class Cosine(Schedule):
    """Cosine annealing to min_factor * lr0 over t_max epochs, then constant."""

    name: ClassVar[str] = "cosine"
    summary: ClassVar[str] = "Cosine annealing from lr0 to min_factor * lr0 over t_max epochs."
    Config: ClassVar[type[Config]] = CosineConfig
    examples: ClassVar[tuple[dict, ...]] = (
        {"t_max": 10},
        {"t_max": 5, "min_factor": 0.1, "warmup_epochs": 1},
    )

    def factor(self, epoch: float) -> float:
        return cosine_factor(epoch, self.config.t_max, self.config.min_factor)
