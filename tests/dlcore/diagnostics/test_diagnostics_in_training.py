"""The rules fire in real runs of the digits MLP: a diverging rate, a tiny one, overfitting, dead ReLUs, zeros."""

from __future__ import annotations

import copy

import pytest

from dlcore.training import Callback, TrainingFailed, train

MLP = {
    "dataset": {"type": "digits", "preprocess": [{"type": "mean_image"}, {"type": "std"}]},
    "model": {"architecture": "mlp", "hidden": [128, 64]},
    "optimizer": {"type": "sgd", "lr": 0.05},
    "schedule": {"type": "constant"},
    "training": {"epochs": 2, "batch_size": 32, "seed": 0},
}


def spec(**changes):
    out = copy.deepcopy(MLP)
    for key, value in changes.items():
        if isinstance(value, dict) and key in ("training", "dataset", "diagnostics"):
            out.setdefault(key, {}).update(value)
        else:
            out[key] = value
    return out


class Events(Callback):
    def __init__(self):
        self.events = []

    def on_event(self, trainer, event):
        self.events.append(event)


def codes(result):
    return [e["code"] for e in result.events]


def test_a_sane_learning_rate_trains_without_warnings():
    result = train(spec())
    assert codes(result) == []
    assert result.metrics["val_accuracy"] > 0.8


def test_diverging_learning_rate_stops_at_once_with_nan_loss():
    seen = Events()
    with pytest.raises(TrainingFailed) as info:
        train(spec(optimizer={"type": "sgd", "lr": 5.0}), callbacks=[seen])
    assert info.value.code == "nan_loss"
    event = info.value.event
    assert event.iteration <= 5
    assert f"at iteration {event.iteration} (epoch 1): the learning rate 5 is likely too high" in info.value.message
    assert [e.code for e in seen.events] == ["nan_loss"]  # reported to callbacks before failing


def test_tiny_learning_rate_gives_slow_progress():
    result = train(spec(optimizer={"type": "sgd", "lr": 1e-7}, training={"epochs": 1}, diagnostics={"slow_progress_window": 40}))
    (event,) = [e for e in result.events if e["code"] == "slow_progress"]
    assert event["iteration"] == 40 and "1e-07 is likely too low" in event["message"]


def test_wide_mlp_on_a_tiny_split_overfits():
    result = train(spec(
        model={"architecture": "mlp", "hidden": [256, 256]},
        optimizer={"type": "momentum", "lr": 0.05},
        dataset={"val_fraction": 0.9},
        training={"epochs": 10},
    ))
    assert "overfitting" in codes(result)
    (event,) = [e for e in result.events if e["code"] == "overfitting"]
    assert event["data"]["train_accuracy"] - event["data"]["val_accuracy"] >= 0.1


def test_a_run_whose_relus_die_reports_dead_relu():
    result = train(spec(optimizer={"type": "momentum", "lr": 0.5}))
    (event,) = [e for e in result.events if e["code"] == "dead_relu"]
    assert max(layer["dead_fraction"] for layer in event["data"]["layers"]) >= 0.5


def test_zero_init_is_reported_at_the_start():
    result = train(spec(init={"type": "zeros"}, training={"epochs": 1}))
    assert codes(result)[0] == "zero_init"
    assert result.events[0]["iteration"] == 0


def test_warnings_can_be_switched_off_but_nan_loss_cannot():
    result = train(spec(init={"type": "zeros"}, training={"epochs": 1}, diagnostics={"enabled": False}))
    assert codes(result) == []
    with pytest.raises(TrainingFailed):
        train(spec(optimizer={"type": "sgd", "lr": 5.0}, diagnostics={"enabled": False}))


def test_weights_far_too_large_give_initial_loss():
    import math

    result = train(spec(init={"type": "normal", "std": 1.0}, training={"epochs": 1}))
    (event,) = [e for e in result.events if e["code"] == "initial_loss"]
    assert event["iteration"] == 1 and event["data"]["expected"] == pytest.approx(math.log(10))
    assert event["data"]["first_loss"] > 1.5 * math.log(10)  # beyond the default tolerance 0.5
    assert "10 classes" in event["message"]
