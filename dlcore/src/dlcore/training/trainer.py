"""The deterministic trainer: mini-batches, loss plus regularization, one synchronous update.

One seeded generator each for initialization, data order and noise (dropout,
stochastic depth, augmentation), all from ``training.seed``.  Checkpoints hold
every array and generator state, so a resumed run ends with weights
bit-identical to one that never stopped (same BLAS and thread count).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from dlcore.augmentation import make_augmentation
from dlcore.datasets import at_dataset
from dlcore.datasets.split import stratified_split
from dlcore.diagnostics.monitor import DiagnosticsMonitor
from dlcore.errors import ConfigError
from dlcore.events import Callback, DiagnosticEvent, EpochInfo, IterationInfo, TrainingFailed
from dlcore.heap import keep_freed_memory
from dlcore.layout import to_internal
from dlcore.model import Model, array_to_json, assign_arrays
from dlcore.registry import default_registry
from dlcore.spec import ValidatedSpec, build, seed_generators, validate
from dlcore.spec.sections import upgrade_saved_spec
from dlcore.training.checkpoint import (
    pack_checkpoint,
    runtime_difference,
    runtime_versions,
    unpack_checkpoint,
)

#: A checkpoint handed over as a file stays in memory up to this size, then goes to disk.
CHECKPOINT_SPOOL_BYTES = 32 * 2**20


@dataclass
class TrainResult:
    """What a run produced.

    metrics: {"val_accuracy", "train_accuracy", "val_loss", "train_loss",
    "epochs" (completed), "seconds" (training time over all attempts),
    "best_epoch"}; history: EpochInfo dicts; events: DiagnosticEvent dicts;
    stopped: True when ``request_stop`` ended the run early (the model then holds
    the weights of the last completed epoch, or of the best one under early
    stopping); stop_reason: why the run ended before its last epoch (the reason
    given to ``request_stop``, ``max_runtime`` or ``early_stopping``); at_epoch_end:
    False when the model holds mid-epoch weights because the run stopped inside the
    epoch it had resumed in (the checkpoint did not carry that epoch's start).
    """

    model: Model
    metrics: dict
    history: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    stopped: bool = False
    stop_reason: str | None = None
    at_epoch_end: bool = True


def train(
    spec, callbacks: Iterable = (), resume_from: bytes | IO[bytes] | None = None, registry=None, data=None, warm_start=None
) -> TrainResult:
    """Train ``spec``; see :class:`Trainer`.

    Inputs:
    - spec: a ``ValidatedSpec`` (trusted as it is) or a plain job spec (validated here).
    - callbacks: objects with some of the ``on_*`` hooks of ``dlcore.events.Callback``.
    - resume_from: checkpoint bytes (from ``on_checkpoint``) to continue from, or a seekable
      binary file holding them (a checkpoint of a gigabyte is then never bytes in memory).
    - data: (x, y) to use instead of loading the spec's dataset (x public layout).
    - warm_start: a ``Model`` (or its ``arrays()``) whose parameters and state start the run.
    Raises ``TrainingFailed`` (``nan_loss``, ``bad_data``, ``bad_warm_start``) when retrying cannot help.
    """
    return Trainer(spec, callbacks, registry=registry, data=data, warm_start=warm_start).run(resume_from)


def _class_metrics(y: np.ndarray, pred: np.ndarray, num_classes: int) -> tuple[float, list[float], list[list[int]]]:
    """Accuracy, per-class accuracy and the confusion matrix (rows true, columns predicted)."""
    confusion = np.bincount(y * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    support = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), support, out=np.zeros(num_classes), where=support > 0)
    accuracy = float(np.trace(confusion) / max(1, len(y)))
    return accuracy, [float(a) for a in per_class], confusion.tolist()


class Trainer:
    """Runs one job spec; callbacks watch it and may ``request_stop``.

    ``spec`` is a ``ValidatedSpec`` (used as it is: ``dlcore.spec.validate`` already
    checked it) or a plain mapping (validated here, once).  ``data`` is ``(x, y)``
    when the dataset is arrays rather than a file; ``warm_start`` a ``Model`` (or its
    ``arrays()``) whose parameters and state the run starts from (same layer shapes;
    preprocessing is fitted again on this run's data).

    Attributes callbacks may read: ``spec`` (a ``ValidatedSpec``), ``model``, ``loss``,
    ``iteration``, ``epoch`` (completed epochs), ``iterations_per_epoch``,
    ``total_iterations``, ``history``, ``events``, ``x_train`` (preprocessed,
    public layout), ``init_warnings``.
    """

    def __init__(self, spec, callbacks: Iterable = (), registry=None, data=None, warm_start=None):
        self.registry = registry or default_registry()
        self.spec: ValidatedSpec = validate(spec, self.registry)
        self.warm_start = warm_start
        self.epoch_weights: tuple[dict, dict] | None = None  # (params, state) at the last completed epoch
        self.monitor = DiagnosticsMonitor(self.spec["diagnostics"])
        self.callbacks = [self.monitor, *callbacks]
        self.data = data
        self.stop_reason: str | None = None
        self.history: list[dict] = []
        self.events: list[dict] = []
        self.init_warnings: list[str] = []
        self.iteration = 0
        self.epoch = 0
        self.runtime_change: dict = {}

    # ----------------------------------------------------------------- control

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask the run to stop after the current iteration (a checkpoint is emitted first)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def emit(self, event: DiagnosticEvent) -> None:
        """Record a diagnostic event and pass it to every callback's ``on_event``."""
        self.events.append(event.to_dict())
        self._call("on_event", event, skip_monitor=True)

    def _call(self, hook: str, *args, skip_monitor: bool = False) -> None:
        for cb in self.callbacks:
            if skip_monitor and cb is self.monitor:
                continue
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    # ----------------------------------------------------------------- setup

    def _load_data(self) -> tuple[np.ndarray, np.ndarray]:
        ds_entry = self.spec["dataset"]
        if self.data is not None:
            x, y = self.data
        else:
            params = {k: v for k, v in ds_entry.items() if k not in ("type", "val_fraction", "seed", "preprocess", "augment")}
            try:
                x, y = self.registry.get("datasets", ds_entry["type"])(params).load()
            except ConfigError as exc:
                raise TrainingFailed("bad_data", str(at_dataset(exc))) from None
        x = np.asarray(x)
        y = np.asarray(y)
        shape = self.model.sample_shape
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise TrainingFailed("bad_data", f"dataset.x: samples have shape {list(x.shape[1:])}, the spec declares {list(shape)}")
        if y.shape != (len(x),):
            raise TrainingFailed("bad_data", f"dataset.y: expected {len(x)} labels, got shape {list(y.shape)}")
        if x.dtype.kind not in "biuf" or not np.all(np.isfinite(x)):
            raise TrainingFailed("bad_data", "dataset.x: values must be finite real numbers (found NaN, inf or non-numbers)")
        with np.errstate(over="ignore"):
            if not np.all(np.isfinite(x.astype(self.dtype))):
                raise TrainingFailed("bad_data", f"dataset.x: values too large for training.dtype {self.dtype}; scale the data or use float64")
        if not np.issubdtype(y.dtype, np.integer) and not (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y))):
            raise TrainingFailed("bad_data", f"dataset.y: labels must be integers, got dtype {y.dtype}")
        y = y.astype(np.int64)
        c = self.model.num_classes
        if len(y) and (y.min() < 0 or y.max() >= c):
            raise TrainingFailed("bad_data", f"dataset.y: labels must be in [0, {c}), found {int(y.min())}..{int(y.max())}")
        return x, y

    def _setup(self, resume_from: bytes | None) -> None:
        spec, reg = self.spec, self.registry
        training = spec["training"]
        self.dtype = np.dtype(training["dtype"])
        self.gens = seed_generators(training["seed"])
        self.model = build(spec, reg, rng=self.gens["init"], init_warnings=self.init_warnings)
        self.loss = self.model.loss
        self.net = self.model.net
        x, y = self._load_data()
        ds = spec["dataset"]
        train_idx, val_idx = stratified_split(y, ds["val_fraction"], ds["seed"])
        self.y_train, self.y_val = y[train_idx], y[val_idx]
        self.optimizer = _make(reg, "optimizers", spec["optimizer"])
        self.schedule = _make(reg, "schedules", spec["schedule"])
        self.regularizers = [_make(reg, "regularizers", r) for r in spec["regularization"]]
        self.augmentations = []
        if ds["augment"]:
            self.augmentations = [make_augmentation(dict(a)) for a in ds["augment"]]
        self.batch_size = training["batch_size"]
        self.epochs = training["epochs"]
        self.n_train = len(train_idx)
        if self.n_train == 0:
            raise TrainingFailed(
                "bad_data",
                f"dataset: the training split is empty ({len(y)} samples, val_fraction {ds['val_fraction']:g}); "
                f"use a smaller val_fraction or more samples per class",
            )
        if len(val_idx) == 0:  # validation metrics would be NaN and early stopping blind
            raise TrainingFailed(
                "bad_data",
                f"dataset: the validation split is empty ({len(y)} samples, val_fraction {ds['val_fraction']:g}); "
                f"use a larger val_fraction or more samples per class",
            )
        self.iterations_per_epoch = math.ceil(self.n_train / self.batch_size)
        self.total_iterations = self.epochs * self.iterations_per_epoch
        self.params = dict(self.net.named_params())
        self.pos = 0  # mini-batches done in the current epoch
        self.perm: np.ndarray | None = None
        self.sums = {"loss": 0.0, "correct": 0, "seen": 0}
        self.best: dict[str, Any] = {"value": None, "epoch": None, "params": None, "state": None}
        self.seconds_before = 0.0
        if resume_from is not None:
            self._restore(resume_from)
        elif self.warm_start is not None:
            self._warm_start(self.warm_start)
        if self.pos == 0 and self.epoch > 0:  # resumed at an epoch's end: these are its weights
            self._keep_epoch_weights()
        if resume_from is not None:
            self.x_train = self.model.preprocess(x[train_idx])
        else:
            self.x_train = self.model.fit_preprocessing(x[train_idx].astype(self.dtype))
        self.x_train = np.ascontiguousarray(self.x_train, dtype=self.dtype)
        self.x_val = self.model.preprocess(x[val_idx])

    # ----------------------------------------------------------------- checkpoints

    def checkpoint(self, file: IO[bytes] | None = None) -> bytes | None:
        """The current state as checkpoint bytes (see :mod:`dlcore.training.checkpoint`),
        or written to ``file`` (a seekable binary file; None is returned then)."""
        arrays = {k: v for k, v in self.model.arrays().items() if k not in ("format_version", "kind")}
        arrays.update({f"opt/{k}": v for k, v in self.optimizer.state_dict().items() if k != "t"})
        arrays["opt_t"] = np.asarray(self.optimizer.t)
        if self.perm is not None:
            arrays["perm"] = self.perm
        if self.best["params"] is not None:
            arrays.update({f"best/param/{k}": v for k, v in self.best["params"].items()})
            arrays.update({f"best/state/{k}": v for k, v in self.best["state"].items()})
        meta = {
            "epoch": self.epoch,
            "pos": self.pos,
            "iteration": self.iteration,
            "sums": self.sums,
            "history": self.history,
            "events": self.events,
            "rng": {name: g.bit_generator.state for name, g in self.gens.items()},
            "monitor": self.monitor.state_dict(),
            "best": {"value": self.best["value"], "epoch": self.best["epoch"]},
            "seconds": self.seconds_before + self._elapsed(),
            "init_warnings": self.init_warnings,
            "versions": runtime_versions(),
        }
        return pack_checkpoint(arrays, meta, file=file)

    def _emit_checkpoint(self) -> None:
        # Packing costs milliseconds (copies, a BLAS query): only for callbacks that keep this one.
        listeners = [
            cb for cb in self.callbacks
            if getattr(type(cb), "on_checkpoint", Callback.on_checkpoint) is not Callback.on_checkpoint
            and (not hasattr(cb, "wants_checkpoint") or cb.wants_checkpoint(self, self.iteration))
        ]
        if not listeners:
            return
        if all(getattr(cb, "checkpoint_as_file", False) for cb in listeners):
            for cb in listeners:  # one file each: every callback owns (and closes) its own
                file = tempfile.SpooledTemporaryFile(max_size=CHECKPOINT_SPOOL_BYTES)  # noqa: SIM115 - handed over
                self.checkpoint(file=file)
                file.seek(0)
                cb.on_checkpoint(self, file, self.iteration)
            return
        data = self.checkpoint()
        for cb in listeners:
            cb.on_checkpoint(self, data, self.iteration)

    def _restore(self, data: bytes | IO[bytes]) -> None:
        """Continue from checkpoint bytes; ``TrainingFailed("bad_checkpoint")`` when they cannot be used."""
        try:
            self._restore_from(data)
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, zipfile.BadZipFile) as exc:
            # a truncated or hand-made file, or one missing a key: the reason, not a traceback
            raise TrainingFailed("bad_checkpoint", f"resume: cannot continue from this checkpoint: {exc}") from None

    def _restore_from(self, data: bytes | IO[bytes]) -> None:
        arrays, meta = unpack_checkpoint(data)
        saved_spec = array_to_json(arrays["spec_json"])
        if _identity(saved_spec) != _identity(self.spec):
            raise ValueError("the checkpoint was taken for a different spec")
        self.model.load_arrays({k: v for k, v in arrays.items() if k.split("/")[0] in ("param", "state", "preprocess")})
        opt = {k[len("opt/") :]: v for k, v in arrays.items() if k.startswith("opt/")}
        opt["t"] = arrays["opt_t"]
        self.optimizer.load_state_dict(opt)
        self.perm = np.array(arrays["perm"]) if "perm" in arrays else None
        if self.perm is not None and (self.perm.shape != (self.n_train,) or not np.array_equal(np.sort(self.perm), np.arange(self.n_train))):
            # the spec names its data by path, which is not part of its identity: the file changed
            raise ValueError(f"the checkpoint's data order covers {self.perm.size} training samples, this data set has {self.n_train}")
        if meta["best"]["epoch"] is not None:
            self.best = {
                "value": meta["best"]["value"],
                "epoch": meta["best"]["epoch"],
                "params": {k[len("best/param/") :]: np.array(v) for k, v in arrays.items() if k.startswith("best/param/")},
                "state": {k[len("best/state/") :]: np.array(v) for k, v in arrays.items() if k.startswith("best/state/")},
            }
        for name, state in meta["rng"].items():
            self.gens[name].bit_generator.state = state
        self.epoch, self.pos, self.iteration = meta["epoch"], meta["pos"], meta["iteration"]
        self.sums = dict(meta["sums"])
        self.history = list(meta["history"])
        self.events = list(meta["events"])
        self.monitor.load_state_dict(meta["monitor"])
        self.seconds_before = float(meta["seconds"])
        self.init_warnings[:] = meta.get("init_warnings", [])
        self.runtime_change = runtime_difference(meta.get("versions", {}), runtime_versions())

    def _emit_runtime_change(self) -> None:
        """A resumed run on another NumPy, BLAS or thread count: say that the last bits may differ."""
        parts = "; ".join(f"{key} {was} -> {now}" for key, (was, now) in self.runtime_change.items())
        self.emit(
            DiagnosticEvent(
                code="runtime_changed",
                severity="warning",
                iteration=self.iteration,
                epoch=self.iteration / self.iterations_per_epoch,
                message=(
                    f"resumed on a different runtime than the checkpoint's ({parts}): the final weights may "
                    f"differ in the last bits from a run that never stopped"
                ),
                data={key: {"checkpoint": was, "now": now} for key, (was, now) in self.runtime_change.items()},
            )
        )

    def _warm_start(self, source) -> None:
        """Start from a model's parameters and state (a ``Model`` or its arrays; names and shapes must match)."""
        try:
            arrays = source.arrays() if isinstance(source, Model) else source
            kind = str(arrays.get("kind", ""))
            if kind not in ("model", "checkpoint"):
                raise ValueError(f"not a saved dlcore model (kind {kind!r}); save one with Model.save or dljobs train --out")
            assign_arrays(self.model.params(), {k[6:]: v for k, v in arrays.items() if k.startswith("param/")}, "param")
            assign_arrays(self.model.state(), {k[6:]: v for k, v in arrays.items() if k.startswith("state/")}, "state")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise TrainingFailed("bad_warm_start", f"warm start: cannot start from this model: {exc}") from None

    # ----------------------------------------------------------------- the loop

    def _elapsed(self) -> float:
        return time.perf_counter() - self._t0 if getattr(self, "_t0", None) is not None else 0.0

    def _train_step(self) -> None:
        """One mini-batch: forward, loss + regularization, backward, one synchronous update."""
        bs = self.batch_size
        idx = self.perm[self.pos * bs : (self.pos + 1) * bs]
        xb, yb = self.x_train[idx], self.y_train[idx]
        noise = self.gens["noise"]
        for aug in self.augmentations:
            xb = aug.apply(xb, noise)
        scores = self.net.forward(to_internal(xb), training=True, rng=noise)
        data_loss, dscores = self.loss.forward(scores, yb)
        self.net.backward(dscores)
        reg_loss = 0.0
        if self.regularizers:
            for leaf in self.net.layers_flat():
                for key, w in list(leaf.regularized_params()):
                    for reg in self.regularizers:
                        value, dw = reg.penalty(w)
                        reg_loss += float(value)
                        leaf.grads[key] = leaf.grads[key] + dw
        grads = dict(self.net.named_grads())
        lr = self.schedule.lr(self.optimizer.lr, self.iteration / self.iterations_per_epoch)
        self.optimizer.step(self.params, grads, lr)
        loss = float(data_loss) + reg_loss
        self.sums["loss"] += loss * len(idx)
        self.sums["correct"] += int(np.count_nonzero(np.argmax(scores, axis=1) == yb))
        self.sums["seen"] += len(idx)
        self.pos += 1
        self.iteration += 1
        info = IterationInfo(
            iteration=self.iteration,
            iterations=self.total_iterations,
            epoch=self.iteration / self.iterations_per_epoch,
            epochs=self.epochs,
            loss=loss,
            lr=float(lr),
        )
        self._call("on_iteration", info)

    def _evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float, list[float], list[list[int]]]:
        scores = self.model.scores_of_preprocessed(x, self.spec["training"]["eval_batch_size"])
        if len(y) == 0:
            return float("nan"), float("nan"), [], []
        loss, _ = self.loss.forward(scores, y)
        acc, per_class, confusion = _class_metrics(y, np.argmax(scores, axis=1), self.model.num_classes)
        return float(loss), acc, per_class, confusion

    def _end_epoch(self, epoch_started: float) -> bool:
        """Evaluate, record, tell the callbacks; True when early stopping ends the run."""
        val_loss, val_acc, per_class, confusion = self._evaluate(self.x_val, self.y_val)
        seen = max(1, self.sums["seen"])
        self.epoch += 1
        info = EpochInfo(
            epoch=self.epoch,
            epochs=self.epochs,
            iteration=self.iteration,
            train_loss=self.sums["loss"] / seen,
            train_accuracy=self.sums["correct"] / seen,
            val_loss=val_loss,
            val_accuracy=val_acc,
            seconds=time.perf_counter() - epoch_started,
            per_class_accuracy=per_class,
            confusion=confusion,
        )
        self.history.append(info.to_dict())
        self._keep_epoch_weights()
        self.pos, self.perm = 0, None
        self.sums = {"loss": 0.0, "correct": 0, "seen": 0}
        self._call("on_epoch", info)
        return self._early_stopping(info)

    def _keep_epoch_weights(self) -> None:
        """Remember the weights of the epoch that just ended: a run stopped mid-epoch hands them back."""
        self.epoch_weights = (
            {k: v.copy() for k, v in self.net.named_params()},
            {k: v.copy() for k, v in self.net.named_state()},
        )

    def _early_stopping(self, info: EpochInfo) -> bool:
        rule = self.spec["training"]["early_stopping"]
        if rule is None:
            return False
        value = getattr(info, rule["metric"])
        sign = 1.0 if rule["metric"] == "val_accuracy" else -1.0
        best = self.best["value"]
        if best is None or sign * (value - best) > rule["min_delta"]:
            self.best = {
                "value": value,
                "epoch": info.epoch,
                "params": {k: v.copy() for k, v in self.net.named_params()},
                "state": {k: v.copy() for k, v in self.net.named_state()},
            }
            return False
        return info.epoch - self.best["epoch"] >= rule["patience"]

    def run(self, resume_from: bytes | IO[bytes] | None = None) -> TrainResult:
        """Train to the end, to early stopping, or to a requested stop; see :func:`train`."""
        self._t0 = None
        keep_freed_memory()  # every step's large arrays reuse the last step's pages (dlcore.heap)
        self._setup(resume_from)
        self._t0 = time.perf_counter()
        self._call("on_start")
        if self.runtime_change:
            self._emit_runtime_change()
        every = self.spec["training"]["checkpoint_every"]
        max_runtime = self.spec["training"]["max_runtime_s"]
        ended_early: str | None = None
        while self.epoch < self.epochs:
            epoch_started = time.perf_counter()
            if self.perm is None:
                self.perm = self.gens["order"].permutation(self.n_train)
            while self.pos < self.iterations_per_epoch:
                self._train_step()
                if max_runtime is not None and self.seconds_before + self._elapsed() > max_runtime:
                    self.request_stop("max_runtime")
                if self.pos < self.iterations_per_epoch:  # the epoch's last step is handled after evaluation
                    if self.stop_reason is not None:
                        self._emit_checkpoint()
                        return self._finish(stopped=True)
                    if every is not None and self.iteration % every == 0:
                        self._emit_checkpoint()
            if self._end_epoch(epoch_started):
                ended_early = "early_stopping"
                break
            if self.stop_reason is not None and self.epoch < self.epochs:
                self._emit_checkpoint()
                return self._finish(stopped=True)
            if every is None or self.iteration % every == 0:
                self._emit_checkpoint()
        return self._finish(stopped=False, reason=ended_early)

    def _finish(self, stopped: bool, reason: str | None = None) -> TrainResult:
        at_epoch_end = True
        if self.best["params"] is not None:  # early stopping: hand back the best epoch's weights
            self._load_weights(self.best["params"], self.best["state"])
            self.model.best_epoch = self.best["epoch"]
        else:
            if stopped and self.pos > 0:
                if self.epoch_weights is not None:
                    self._load_weights(*self.epoch_weights)  # stopped mid-epoch: the last completed epoch's
                else:
                    at_epoch_end = False
            self.model.best_epoch = self.epoch if self.epoch > 0 else None
        chosen = None
        if self.history:
            chosen = self.history[self.model.best_epoch - 1] if self.model.best_epoch else self.history[-1]
        if chosen is not None:
            metrics = {k: chosen[k] for k in ("val_accuracy", "train_accuracy", "val_loss", "train_loss")}
        else:  # stopped before the first epoch ended: measure the weights we have
            val_loss, val_acc, _, _ = self._evaluate(self.x_val, self.y_val)
            train_loss, train_acc, _, _ = self._evaluate(self.x_train, self.y_train)
            metrics = {"val_accuracy": val_acc, "train_accuracy": train_acc, "val_loss": val_loss, "train_loss": train_loss}
        metrics.update(
            {"epochs": self.epoch, "seconds": self.seconds_before + self._elapsed(), "best_epoch": self.model.best_epoch}
        )
        result = TrainResult(
            model=self.model,
            metrics=metrics,
            history=list(self.history),
            events=list(self.events),
            stopped=stopped,
            stop_reason=self.stop_reason if stopped else reason,
            at_epoch_end=at_epoch_end,
        )
        self._call("on_end", result)
        return result

    def _load_weights(self, params: dict, state: dict) -> None:
        for k, v in self.net.named_params():
            np.copyto(v, params[k])
        for k, v in self.net.named_state():
            np.copyto(v, state[k])


def _identity(spec) -> str:
    """The spec as JSON without where its data lives.

    A resumed run may read its data from another local path (another machine, another
    folder); the starting weights are inside the checkpoint, not in the spec.
    """
    spec = upgrade_saved_spec(json.loads(json.dumps(dict(spec))))  # checkpoints taken before the service's keys left
    dataset = spec.get("dataset")
    if isinstance(dataset, dict):
        spec["dataset"] = {k: v for k, v in dataset.items() if k != "path"}
    return json.dumps(spec, sort_keys=True)


def _make(registry, group: str, entry: dict):
    return registry.get(group, entry["type"])({k: v for k, v in entry.items() if k != "type"})
