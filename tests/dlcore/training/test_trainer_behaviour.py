"""What callbacks see, early stopping, cooperative and time-limited stops, bad data."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from dlcore.errors import SpecError
from dlcore.loading import load_model
from dlcore.training import Callback, TrainingFailed, train

MLP = {
    "dataset": {"type": "spiral", "points_per_class": 40, "classes": 3, "seed": 1, "val_fraction": 0.25},
    "model": {"layers": [{"type": "affine", "units": 24}, {"type": "relu"}, {"type": "affine", "units": 3}]},
    "optimizer": {"type": "momentum", "lr": 0.1},
    "schedule": {"type": "constant"},
    "training": {"epochs": 4, "batch_size": 16, "seed": 0, "dtype": "float64"},
}


class Log(Callback):
    def __init__(self):
        self.calls = []
        self.iterations = []
        self.epochs = []
        self.checkpoints = []

    def on_start(self, trainer):
        self.calls.append("start")

    def on_iteration(self, trainer, info):
        self.iterations.append(info)

    def on_epoch(self, trainer, info):
        self.epochs.append(info)

    def on_checkpoint(self, trainer, data, iteration):
        self.checkpoints.append(iteration)

    def on_end(self, trainer, result):
        self.calls.append("end")


def test_callbacks_see_every_iteration_and_epoch():
    log = Log()
    result = train(MLP, callbacks=[log])
    per_epoch = int(np.ceil(90 / 16))  # 120 points, 30 held out
    assert [i.iteration for i in log.iterations] == list(range(1, 4 * per_epoch + 1))
    assert log.iterations[-1].iterations == 4 * per_epoch
    assert log.iterations[per_epoch - 1].epoch == pytest.approx(1.0)
    assert all(i.lr == pytest.approx(0.1) for i in log.iterations)
    assert [e.epoch for e in log.epochs] == [1, 2, 3, 4]
    assert log.checkpoints == [per_epoch * k for k in (1, 2, 3, 4)]  # once per epoch by default
    assert log.calls == ["start", "end"]
    last = log.epochs[-1]
    assert 0.0 <= last.val_accuracy <= 1.0 and 0.0 <= last.train_accuracy <= 1.0
    confusion = np.array(last.confusion)
    assert confusion.shape == (3, 3) and confusion.sum() == 30
    assert np.trace(confusion) / 30 == pytest.approx(last.val_accuracy)
    assert len(last.per_class_accuracy) == 3
    m = result.metrics
    assert set(m) >= {"val_accuracy", "train_accuracy", "val_loss", "train_loss", "epochs", "seconds", "best_epoch"}
    assert m["epochs"] == 4 and m["val_accuracy"] == last.val_accuracy and m["best_epoch"] == 4
    assert not result.stopped and result.stop_reason is None


def test_early_stopping_restores_the_best_epoch_weights():
    spec = copy.deepcopy(MLP)
    spec["training"].update(epochs=40, early_stopping={"metric": "val_loss", "patience": 2})
    spec["optimizer"] = {"type": "sgd", "lr": 3.0}  # noisy enough that val_loss stops improving
    result = train(spec)
    best = result.metrics["best_epoch"]
    assert result.stop_reason == "early_stopping" and not result.stopped
    assert best is not None and best == result.model.best_epoch
    assert len(result.history) == best + 2
    assert result.metrics["val_loss"] == min(h["val_loss"] for h in result.history)
    # the same run stopped at the best epoch holds the same weights (constant schedule)
    plain = copy.deepcopy(spec)
    plain["training"].update(epochs=best, early_stopping=None)
    reference = train(plain).model
    for k, v in reference.params().items():
        assert np.array_equal(v, result.model.params()[k])
    loaded = load_model(result.model.to_bytes())
    assert loaded.best_epoch == best


def test_request_stop_before_the_first_epoch_ends():
    class StopAt3(Callback):
        def on_iteration(self, trainer, info):
            if info.iteration == 3:
                trainer.request_stop("cancelled")

    log = Log()
    result = train(MLP, callbacks=[StopAt3(), log])
    assert result.stopped and result.stop_reason == "cancelled"
    assert log.checkpoints == [3] and log.epochs == [] and log.calls == ["start", "end"]
    assert result.metrics["epochs"] == 0 and 0 <= result.metrics["val_accuracy"] <= 1


def test_max_runtime_stops_with_a_checkpoint():
    spec = copy.deepcopy(MLP)
    spec["training"].update(max_runtime_s=1e-9, epochs=50)
    log = Log()
    result = train(spec, callbacks=[log])
    assert result.stopped and result.stop_reason == "max_runtime"
    assert log.checkpoints == [1]


def test_a_run_stopped_mid_epoch_hands_back_its_last_completed_epochs_weights():
    class StopMidSecondEpoch(Callback):
        def on_epoch(self, trainer, info):
            if info.epoch == 1:
                self.epoch_one = {k: v.copy() for k, v in trainer.model.params().items()}

        def on_iteration(self, trainer, info):
            if trainer.epoch == 1 and trainer.pos == 2:
                self.mid = {k: v.copy() for k, v in trainer.model.params().items()}
                trainer.request_stop("max_runtime")

    spec = copy.deepcopy(MLP)
    spec["training"].update(epochs=5, batch_size=16)
    stopper = StopMidSecondEpoch()
    result = train(spec, callbacks=[stopper])
    assert result.stopped and result.metrics["epochs"] == 1
    assert any(not np.array_equal(stopper.mid[k], v) for k, v in stopper.epoch_one.items())  # it had moved on
    for k, v in result.model.params().items():
        assert np.array_equal(v, stopper.epoch_one[k])


@pytest.mark.parametrize("mutate, message", [
    (lambda x, y: (np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), y), "finite"),
    (lambda x, y: (x, np.where(np.arange(len(y)) == 0, 7, y)), "labels must be in [0, 3)"),
    (lambda x, y: (x[:, :1], y), "shape"),
])
def test_bad_data_fails_with_the_reason(mutate, message):
    from dlcore.registry import default_registry

    x, y = default_registry().get("datasets", "spiral")({"points_per_class": 40, "classes": 3, "seed": 1}).load()
    with pytest.raises(TrainingFailed) as info:
        train(MLP, data=mutate(x, y))
    assert info.value.code == "bad_data" and message in info.value.message


def test_float32_and_float64_both_train():
    for dtype in ("float32", "float64"):
        spec = copy.deepcopy(MLP)
        spec["training"]["dtype"] = dtype
        model = train(spec).model
        assert all(v.dtype == np.dtype(dtype) for v in model.params().values())
        x = np.zeros((2, 2))
        assert model.predict_proba(x).shape == (2, 3)


def test_warm_start_begins_from_a_models_weights(tmp_path):
    from dlcore.model import read_npz

    first = train(MLP).model
    path = tmp_path / "first.npz"
    first.save(path)

    class Start(Callback):
        def on_start(self, trainer):
            self.weights = {k: v.copy() for k, v in trainer.model.params().items()}

    spec = copy.deepcopy(MLP)
    spec["training"].update(epochs=1)
    for source in (first, read_npz(path)):  # a Model, or a saved model's arrays
        start = Start()
        train(spec, callbacks=[start], warm_start=source)
        for k, v in first.params().items():
            assert np.array_equal(start.weights[k], v)
    other = copy.deepcopy(spec)
    other["model"]["layers"][0]["units"] = 8
    with pytest.raises(TrainingFailed) as info:
        train(other, warm_start=first)
    assert info.value.code == "bad_warm_start" and "shape" in info.value.message
    data = tmp_path / "data.npz"
    np.savez(data, x=np.zeros((4, 2)), y=np.zeros(4))
    with pytest.raises(TrainingFailed) as info:
        train(spec, warm_start=read_npz(data))
    assert info.value.code == "bad_warm_start" and "not a saved dlcore model" in info.value.message


def test_warm_start_and_service_fields_are_not_spec_fields():
    for section, key, value in (("training", "warm_start", "x.npz"), ("training", "max_attempts", 3)):
        spec = copy.deepcopy(MLP)
        spec[section][key] = value
        with pytest.raises(SpecError) as info:
            train(spec)
        assert f"{section}.{key}" in [e.field for e in info.value.errors]


def test_resume_keeps_early_stoppings_best_weights():
    spec = copy.deepcopy(MLP)
    spec["training"].update(epochs=40, early_stopping={"metric": "val_loss", "patience": 2})
    spec["optimizer"] = {"type": "sgd", "lr": 3.0}
    full = train(spec)
    best = full.metrics["best_epoch"]
    per_epoch = int(np.ceil(90 / 16))

    class StopAfterBest(Callback):
        def on_iteration(self, trainer, info):
            if info.iteration == best * per_epoch + 2:  # after the best epoch, before early stopping
                trainer.request_stop("test")

        def on_checkpoint(self, trainer, data, iteration):
            self.last = data

    stopper = StopAfterBest()
    assert train(spec, callbacks=[stopper]).stopped
    resumed = train(spec, resume_from=stopper.last)
    assert resumed.metrics["best_epoch"] == best and resumed.stop_reason == "early_stopping"
    assert resumed.model.to_bytes() == full.model.to_bytes()


def test_a_run_stopped_inside_the_epoch_it_resumed_in_says_its_weights_are_mid_epoch():
    spec = copy.deepcopy(MLP)
    spec["training"].update(epochs=5, batch_size=16)

    class StopAt(Callback):
        def __init__(self, pos):
            self.pos, self.last = pos, None

        def on_iteration(self, trainer, info):
            if trainer.epoch == 1 and trainer.pos == self.pos:
                trainer.request_stop("max_runtime")

        def on_checkpoint(self, trainer, data, iteration):
            self.last = data

    first = StopAt(2)
    stopped = train(spec, callbacks=[first])
    assert stopped.stopped and stopped.at_epoch_end  # it kept epoch 1's weights to hand back
    again = train(spec, callbacks=[StopAt(4)], resume_from=first.last)
    # Resumed at position 2 of epoch 2, it never saw epoch 1's end: its weights belong to no epoch.
    assert again.stopped and again.metrics["epochs"] == 1 and not again.at_epoch_end
    assert train(spec).at_epoch_end
