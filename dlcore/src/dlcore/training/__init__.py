"""Training: the deterministic trainer, its callbacks and checkpoints.

``train(spec, callbacks, resume_from, registry, data) -> TrainResult``; the
callback contract is in :mod:`dlcore.training.events`.  The trainer is
imported lazily so that ``dlcore.training.events`` stays importable from the
modules the trainer itself uses (diagnostics).
"""

from dlcore.training.events import (
    Callback,
    DiagnosticEvent,
    EpochInfo,
    IterationInfo,
    TrainingFailed,
)

__all__ = [
    "Callback",
    "DiagnosticEvent",
    "EpochInfo",
    "IterationInfo",
    "TrainResult",
    "Trainer",
    "TrainingFailed",
    "train",
]


def __getattr__(name: str):
    if name in ("train", "Trainer", "TrainResult"):
        from dlcore.training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'dlcore.training' has no attribute {name!r}")
