"""A data set whose classes all have one sample leaves the validation split empty: bad_data, not NaN metrics."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.training import TrainingFailed, train


def test_an_empty_validation_split_is_bad_data():
    spec = {
        "dataset": {"type": "spiral", "points_per_class": 1, "classes": 3, "val_fraction": 0.01},
        "model": {"architecture": "mlp", "width": 4},
        "training": {"epochs": 2, "early_stopping": {"metric": "val_loss", "patience": 1}},
    }
    with pytest.raises(TrainingFailed) as info:
        train(spec)
    assert info.value.code == "bad_data" and "validation split is empty" in info.value.message


def test_one_class_with_a_single_sample_still_trains():
    x = np.random.default_rng(0).standard_normal((7, 2))
    y = np.array([0, 0, 0, 1, 1, 1, 2])  # class 2 has one sample: it can only be in training
    spec = {"dataset": {"type": "spiral", "classes": 3}, "model": {"architecture": "mlp", "width": 4}, "training": {"epochs": 1}}
    result = train(spec, data=(x, y))
    assert np.isfinite(result.metrics["val_loss"]) and result.metrics["epochs"] == 1


def test_an_empty_training_split_names_the_numbers():
    spec = {
        "dataset": {"type": "spiral", "points_per_class": 1, "classes": 3, "val_fraction": 0.999},
        "model": {"architecture": "mlp", "width": 4},
        "training": {"epochs": 1},
    }
    with pytest.raises(TrainingFailed) as info:
        train(spec)
    assert info.value.code == "bad_data" and "3 samples, val_fraction 0.999" in info.value.message
