"""What the trainer tells its callbacks: iterations, epochs, diagnostics, checkpoints.

This is the contract between dlcore's trainer and whoever watches it (the CLI's
progress bar, the service's worker, dlcore's own diagnostics monitor).  It sits
beside the ``training`` package, not in it, because the diagnostics rules build
these events and the trainer imports the diagnostics: inside ``training`` it was
a cycle, hidden by a lazy import of the trainer.  A callback is any object with some of the
``on_*`` methods of :class:`Callback`; it may call ``trainer.request_stop(reason)``
to stop cooperatively between iterations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class IterationInfo:
    """One optimizer step. ``iteration`` counts from 1 over the whole run; ``epoch`` is fractional."""

    iteration: int
    iterations: int  # total planned iterations of the run
    epoch: float
    epochs: int
    loss: float  # data loss + regularization of this mini-batch
    lr: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EpochInfo:
    """The end of one epoch (``epoch`` counts from 1), with train and validation metrics.

    Accuracies are fractions in [0, 1].  ``per_class_accuracy``: list of C floats;
    ``confusion``: C x C nested list, rows true class, columns predicted.
    """

    epoch: int
    epochs: int
    iteration: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float
    per_class_accuracy: list[float] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DiagnosticEvent:
    """A babysitting finding (catalogue section 9).

    code: ``nan_loss`` | ``initial_loss`` | ``slow_progress`` | ``overfitting`` |
    ``dead_relu`` | ``zero_init`` (the rules of :mod:`dlcore.diagnostics`), or
    ``runtime_changed`` (the trainer: a resume on another NumPy/BLAS/thread count); severity: ``info`` | ``warning`` | ``error``;
    data: the numbers behind the finding.
    """

    code: str
    severity: str
    iteration: int
    epoch: float
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class TrainingFailed(RuntimeError):
    """Training cannot go on and retrying will not help (e.g. ``nan_loss``, bad data)."""

    def __init__(self, code: str, message: str, event: DiagnosticEvent | None = None):
        self.code = code
        self.message = message
        self.event = event
        super().__init__(message)


class Callback:
    """Base with no-op hooks; subclass and override what you need."""

    def on_start(self, trainer) -> None: ...

    def on_iteration(self, trainer, info: IterationInfo) -> None: ...

    def on_epoch(self, trainer, info: EpochInfo) -> None: ...

    def on_event(self, trainer, event: DiagnosticEvent) -> None: ...

    def wants_checkpoint(self, trainer, iteration: int) -> bool:
        """Whether to pack the checkpoint due at ``iteration`` for this callback's
        ``on_checkpoint``; packing costs milliseconds, so one that stores a checkpoint
        only every few seconds says no in between (the default: always)."""
        return True

    #: True: ``on_checkpoint`` gets the checkpoint as a seekable binary file at its start
    #: (spooled to disk when large; the callback owns it and closes it) instead of bytes,
    #: so a checkpoint of a gigabyte is not held in memory.  Used when every listener says so.
    checkpoint_as_file: bool = False

    def on_checkpoint(self, trainer, checkpoint: bytes, iteration: int) -> None:
        """A complete checkpoint (pickle-free ``.npz`` bytes, or a file: ``checkpoint_as_file``)
        to store for resuming."""

    def on_end(self, trainer, result) -> None: ...
