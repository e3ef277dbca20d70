"""initial_loss: the first loss is far from what the loss predicts for tiny weights (ln C, C - 1)."""

from __future__ import annotations

import math

from dlcore.events import DiagnosticEvent


def check_initial_loss(first_loss: float, expected: float, tolerance: float, num_classes: int, epoch: float = 0.0):
    """A ``warning`` when |first - expected| / expected > tolerance, else None."""
    if not math.isfinite(first_loss) or expected <= 0:
        return None
    deviation = abs(first_loss - expected) / expected
    if deviation <= tolerance:
        return None
    direction = "higher" if first_loss > expected else "lower"
    return DiagnosticEvent(
        code="initial_loss",
        severity="warning",
        iteration=1,
        epoch=epoch,
        message=(
            f"the first loss {first_loss:.4g} is {deviation:.0%} {direction} than the {expected:.4g} expected for "
            f"{num_classes} classes with small weights: check the initialization scale, the input preprocessing "
            f"and the loss"
        ),
        data={"first_loss": first_loss, "expected": expected, "deviation": deviation, "tolerance": tolerance},
    )
