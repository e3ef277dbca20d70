"""Model.predict on inputs that cannot give a meaningful answer raises ConfigError on ``inputs``."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.spec import build
from dlcore.training import TrainingFailed, train


@pytest.fixture(scope="module")
def model():
    return build({"dataset": {"type": "spiral"}, "model": {"architecture": "mlp", "width": 4}})


@pytest.mark.parametrize(
    "x",
    [
        np.array([[np.nan, 0.0]]),  # argmax of NaN scores would silently say class 0
        np.array([[np.inf, 0.0]]),
        np.array([[1e300, 0.0]]),  # finite in float64, infinite in the model's float32
        np.ones((2, 2), complex),  # the imaginary part would be dropped silently
        [[1.0, 2.0], [3.0]],  # ragged
        np.array([["a", "b"]]),
    ],
    ids=["nan", "inf", "overflow", "complex", "ragged", "strings"],
)
def test_bad_inputs_raise_config_error(model, x):
    for method in (model.predict, model.predict_proba, model.scores):
        with pytest.raises(ConfigError) as info:
            method(x)
        assert info.value.field == "inputs"


def test_integer_and_boolean_inputs_are_numbers(model):
    # as training data: npz x may hold bools and integers
    assert model.predict(np.ones((3, 2), bool)).shape == (3,)
    assert model.predict(np.ones((3, 2), np.int16)).shape == (3,)


def test_training_data_that_overflows_the_dtype_is_bad_data():
    x = np.array([[1e300, 1.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [0.0, 1.0], [2.0, 2.0]])
    spec = {"dataset": {"type": "spiral", "classes": 2}, "model": {"architecture": "mlp", "width": 4}, "training": {"epochs": 1}}
    with pytest.raises(TrainingFailed) as info:
        train(spec, data=(x, np.array([0, 1] * 3)))
    assert info.value.code == "bad_data" and "float32" in str(info.value)
