"""Training: the deterministic trainer, its callbacks and checkpoints.

``train(spec, callbacks, resume_from, registry, data) -> TrainResult``; the
callback contract (``Callback``, the events, ``TrainingFailed``) is
:mod:`dlcore.events`, re-exported here as the package's public face.
"""

from dlcore.events import (
    Callback,
    DiagnosticEvent,
    EpochInfo,
    IterationInfo,
    TrainingFailed,
)
from dlcore.training.trainer import Trainer, TrainResult, train

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
