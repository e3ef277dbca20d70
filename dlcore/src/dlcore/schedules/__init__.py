"""Learning-rate schedules, one module per schedule.

A schedule is a pure function of the fractional epoch ``t`` (iteration /
iterations per epoch): ``Schedule.lr(base_lr, t) = base_lr * factor(t)``,
ramped linearly from 0 over ``warmup_epochs`` when that is set (the ramp
multiplies the decayed value: ``base_lr * factor(t) * t / warmup_epochs``).
Each module gives the decay as a function, ``xxx_factor(t, ...) -> float``,
and a thin class whose ``factor`` calls it.  Being pure, a schedule needs no
state in checkpoints: the epoch alone restores it.
"""

from __future__ import annotations

from pydantic import Field

from dlcore.config import Config


class ScheduleConfig(Config):
    """Parameters every schedule has: the optional linear warm-up."""

    warmup_epochs: float = Field(
        0.0, ge=0, description="Epochs over which the rate ramps linearly from 0 (0: no warm-up)."
    )
