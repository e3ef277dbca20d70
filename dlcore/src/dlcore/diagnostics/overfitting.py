"""overfitting: training accuracy far above a validation accuracy that stays flat."""

from __future__ import annotations

from dlcore.events import DiagnosticEvent


def check_overfitting(history: list[dict], gap: float, patience: int, min_delta: float = 0.005):
    """A ``warning`` when train - val accuracy >= ``gap`` and validation accuracy has not
    improved by ``min_delta`` over the last ``patience`` epochs, else None.

    Inputs: history: EpochInfo dicts so far (train_accuracy, val_accuracy, epoch, iteration).
    """
    if len(history) <= patience:
        return None
    last = history[-1]
    observed_gap = last["train_accuracy"] - last["val_accuracy"]
    if observed_gap < gap:
        return None
    best_before = max(h["val_accuracy"] for h in history[: -patience])
    best_recent = max(h["val_accuracy"] for h in history[-patience:])
    if best_recent > best_before + min_delta:
        return None
    return DiagnosticEvent(
        code="overfitting",
        severity="warning",
        iteration=last["iteration"],
        epoch=float(last["epoch"]),
        message=(
            f"train accuracy {last['train_accuracy']:.3f} vs validation {last['val_accuracy']:.3f} (gap "
            f"{observed_gap:.3f}) and validation accuracy flat for {patience} epochs: the model is overfitting; "
            f"increase regularization (l2, dropout) or get more data"
        ),
        data={
            "train_accuracy": last["train_accuracy"],
            "val_accuracy": last["val_accuracy"],
            "gap": observed_gap,
            "patience": patience,
        },
    )
