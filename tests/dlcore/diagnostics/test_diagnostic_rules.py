"""Each babysitting rule alone, on numbers chosen to sit on either side of its threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlcore.diagnostics import (
    check_dead_relu,
    check_initial_loss,
    check_nan_loss,
    check_overfitting,
    check_slow_progress,
)


@pytest.mark.parametrize("loss", [float("nan"), float("inf"), 2.31 * 100.5])
def test_nan_loss_fires_on_nan_inf_and_explosion(loss):
    event = check_nan_loss(loss, 2.31, iteration=37, epoch=1.4, lr=0.5, factor=100.0, epoch_number=2)
    assert event.code == "nan_loss" and event.severity == "error"
    assert event.iteration == 37
    assert "at iteration 37 (epoch 2): the learning rate 0.5 is likely too high" in event.message
    if math.isnan(loss):
        assert event.message.startswith("loss became NaN")


def test_nan_loss_quiet_below_the_factor():
    assert check_nan_loss(2.31 * 99, 2.31, 5, 0.1, 0.5, 100.0) is None
    assert check_nan_loss(0.1, 2.31, 5, 0.1, 0.5, 100.0) is None


def test_initial_loss_compares_with_the_expected_value():
    assert check_initial_loss(2.4, math.log(10), 0.5, 10) is None
    event = check_initial_loss(9.0, math.log(10), 0.5, 10)
    assert event.code == "initial_loss" and event.data["expected"] == pytest.approx(2.302585)
    assert "2.303" in event.message and "10 classes" in event.message


def test_slow_progress_fires_on_a_flat_start_only():
    flat = [2.3026 - 1e-5 * i for i in range(50)]
    event = check_slow_progress(flat, 50, 1.1, 1e-7, 0.01)
    assert event.code == "slow_progress" and "1e-07 is likely too low" in event.message
    falling = list(np.linspace(2.3, 1.0, 50))
    assert check_slow_progress(falling, 50, 1.1, 0.1, 0.01) is None
    rising = list(np.linspace(2.3, 9.0, 50))  # diverging is not "too slow"
    assert check_slow_progress(rising, 50, 1.1, 1.0, 0.01) is None


def epochs(pairs):
    return [{"epoch": i + 1, "iteration": 10 * (i + 1), "train_accuracy": t, "val_accuracy": v} for i, (t, v) in enumerate(pairs)]


def test_overfitting_needs_a_gap_and_a_flat_validation():
    flat = epochs([(0.7, 0.7), (0.85, 0.8), (0.95, 0.8), (0.99, 0.8), (1.0, 0.8)])
    event = check_overfitting(flat, gap=0.1, patience=3)
    assert event.code == "overfitting" and event.data["gap"] == pytest.approx(0.2)
    improving = epochs([(0.7, 0.6), (0.85, 0.7), (0.95, 0.75), (0.99, 0.8), (1.0, 0.85)])
    assert check_overfitting(improving, gap=0.1, patience=3) is None
    small_gap = epochs([(0.8, 0.78)] * 5)
    assert check_overfitting(small_gap, gap=0.1, patience=3) is None
    assert check_overfitting(flat[:3], gap=0.1, patience=3) is None


def test_dead_relu_counts_never_active_units():
    active = np.array([True] * 3 + [False] * 7)
    event = check_dead_relu([(1, np.ones(10, bool)), (3, active)], 0.5, 45, 1.0)
    assert event.code == "dead_relu" and event.data["layers"] == [{"index": 3, "dead_fraction": pytest.approx(0.7)}]
    assert "model.layers[3] 70%" in event.message
    assert check_dead_relu([(3, active)], 0.8, 45, 1.0) is None
