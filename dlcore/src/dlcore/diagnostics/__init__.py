"""Babysitting the learning process (catalogue section 9), one small module per rule.

Each rule is a pure function from numbers to ``DiagnosticEvent | None``;
:class:`dlcore.diagnostics.monitor.DiagnosticsMonitor` is the trainer callback
that feeds them and reports what they find.  Thresholds come from the spec's
``diagnostics`` section (defaults in :class:`dlcore.spec.sections.Diagnostics`).
"""

from dlcore.diagnostics.dead_relu import check_dead_relu
from dlcore.diagnostics.initial_loss import check_initial_loss
from dlcore.diagnostics.monitor import DiagnosticsMonitor
from dlcore.diagnostics.nan_loss import check_nan_loss
from dlcore.diagnostics.overfitting import check_overfitting
from dlcore.diagnostics.slow_progress import check_slow_progress
from dlcore.diagnostics.zero_init import check_zero_init

__all__ = [
    "DiagnosticsMonitor",
    "check_dead_relu",
    "check_initial_loss",
    "check_nan_loss",
    "check_overfitting",
    "check_slow_progress",
    "check_zero_init",
]
