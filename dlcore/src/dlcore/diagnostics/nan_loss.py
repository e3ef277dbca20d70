"""nan_loss: the loss became NaN or inf, or exploded: the learning rate is too high. Fatal."""

from __future__ import annotations

import math

from dlcore.events import DiagnosticEvent


def check_nan_loss(
    loss: float, first_loss: float, iteration: int, epoch: float, lr: float, factor: float = 100.0, epoch_number: int = 1
):
    """An ``error`` event when ``loss`` is NaN, inf or over ``factor`` times ``first_loss``, else None.

    ``epoch`` is fractional (the event's position); ``epoch_number`` the 1-based epoch
    the iteration belongs to, named in the message.
    """
    if math.isfinite(loss) and not (math.isfinite(first_loss) and first_loss > 0 and loss > factor * first_loss):
        return None
    if math.isnan(loss):
        what = "became NaN"
    elif math.isinf(loss):
        what = "became inf"
    else:
        what = f"exploded to {loss:.4g} (over {factor:g} times the first loss {first_loss:.4g})"
    return DiagnosticEvent(
        code="nan_loss",
        severity="error",
        iteration=iteration,
        epoch=epoch,
        message=f"loss {what} at iteration {iteration} (epoch {epoch_number}): the learning rate {lr:.3g} is likely too high",
        data={"loss": loss if math.isfinite(loss) else str(loss), "first_loss": first_loss, "lr": lr, "factor": factor},
    )
