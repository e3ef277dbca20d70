"""slow_progress: the loss barely moves at the start of training: the learning rate is too low."""

from __future__ import annotations

from dlcore.events import DiagnosticEvent

#: A loss that rises by more than this over the window is diverging, not slow.
RISING = 0.1


def check_slow_progress(losses: list[float], iteration: int, epoch: float, lr: float, min_decrease: float):
    """A ``warning`` when the mean of the last few losses of the first window is not at least
    ``min_decrease`` (relative) below the mean of the first few, and has not risen
    by more than ``RISING`` either (that is divergence), else None.

    Inputs: losses: the first ``window`` mini-batch losses of the run (the
    monitor checks each run's opening window once: a loss flat late in training
    has converged, it is not slow).
    """
    k = max(2, len(losses) // 10)
    start = sum(losses[:k]) / k
    end = sum(losses[-k:]) / k
    if start <= 0:
        return None
    decrease = (start - end) / start
    if decrease >= min_decrease or decrease < -RISING:
        return None  # it learns, or it diverges (a learning rate too high, not too low)
    return DiagnosticEvent(
        code="slow_progress",
        severity="warning",
        iteration=iteration,
        epoch=epoch,
        message=(
            f"the loss moved from {start:.4g} to {end:.4g} ({decrease:+.2%}) over the first {len(losses)} iterations: "
            f"the learning rate {lr:.3g} is likely too low"
        ),
        data={"start_loss": start, "end_loss": end, "decrease": decrease, "window": len(losses), "lr": lr},
    )
