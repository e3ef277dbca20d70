"""The trainer callback that runs every babysitting rule and reports what it finds."""

from __future__ import annotations

from dlcore.diagnostics.dead_relu import check_dead_relu, relu_activity
from dlcore.diagnostics.initial_loss import check_initial_loss
from dlcore.diagnostics.nan_loss import check_nan_loss
from dlcore.diagnostics.overfitting import check_overfitting
from dlcore.diagnostics.slow_progress import check_slow_progress
from dlcore.diagnostics.zero_init import check_zero_init
from dlcore.events import Callback, TrainingFailed
from dlcore.layout import to_internal


class DiagnosticsMonitor(Callback):
    """Feeds the rules from the trainer's iterations and epochs; each warning fires once per run.

    ``nan_loss`` always runs and is fatal: the event is reported, then
    ``TrainingFailed("nan_loss", message)`` stops the run before the next step.
    Its state (first loss, the opening loss window, rules already fired) goes
    into checkpoints through ``state_dict`` / ``load_state_dict``.
    """

    def __init__(self, config: dict):
        self.config = dict(config)
        self.first_loss: float | None = None
        self.window: list[float] = []
        self.slow_checked = False
        self.fired: list[str] = []

    # ----------------------------------------------------------------- checkpoint

    def state_dict(self) -> dict:
        return {
            "first_loss": self.first_loss,
            "window": list(self.window),
            "slow_checked": self.slow_checked,
            "fired": list(self.fired),
        }

    def load_state_dict(self, state: dict) -> None:
        self.first_loss = state["first_loss"]
        self.window = list(state["window"])
        self.slow_checked = bool(state["slow_checked"])
        self.fired = list(state["fired"])

    # ----------------------------------------------------------------- hooks

    def _report(self, trainer, event) -> None:
        if event is not None and event.code not in self.fired:
            self.fired.append(event.code)
            trainer.emit(event)

    def on_start(self, trainer) -> None:
        if trainer.iteration == 0 and self.config["enabled"]:
            self._report(trainer, check_zero_init(trainer.model.net, trainer.spec["init"]["type"], trainer.init_warnings))

    def on_iteration(self, trainer, info) -> None:
        cfg = self.config
        loss = info.loss
        first = self.first_loss if self.first_loss is not None else loss
        epoch_number = (info.iteration - 1) // trainer.iterations_per_epoch + 1
        fatal = check_nan_loss(loss, first, info.iteration, info.epoch, info.lr, cfg["nan_factor"], epoch_number)
        if fatal is not None:
            self.fired.append(fatal.code)
            trainer.emit(fatal)
            raise TrainingFailed(fatal.code, fatal.message, fatal)
        if self.first_loss is None:
            self.first_loss = loss
            if cfg["enabled"]:
                expected = trainer.loss.expected_initial_loss(trainer.model.num_classes)
                self._report(
                    trainer, check_initial_loss(loss, expected, cfg["initial_loss_tolerance"], trainer.model.num_classes, info.epoch)
                )
        if cfg["enabled"] and not self.slow_checked:
            self.window.append(loss)
            if len(self.window) >= cfg["slow_progress_window"]:
                self.slow_checked = True
                self._report(
                    trainer,
                    check_slow_progress(self.window, info.iteration, info.epoch, info.lr, cfg["slow_progress_min_decrease"]),
                )
                self.window = []

    def on_epoch(self, trainer, info) -> None:
        cfg = self.config
        if not cfg["enabled"]:
            return
        self._report(trainer, check_overfitting(trainer.history, cfg["overfitting_gap"], cfg["overfitting_patience"]))
        if "dead_relu" not in self.fired:
            x = trainer.x_train[: cfg["dead_relu_samples"]]
            activity = relu_activity(trainer.model.net, to_internal(x))
            self._report(trainer, check_dead_relu(activity, cfg["dead_relu_fraction"], info.iteration, float(info.epoch)))
