"""The public gradient checker: its error measures, centred differences, and that it catches wrong gradients."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.gradcheck import (
    away_from_kinks,
    check_layer,
    numerical_gradient,
    reference_error,
    rel_error,
)
from dlcore.layers.affine import Affine


def test_rel_error_is_per_array_with_both_maxima_in_the_denominator():
    a, b = np.array([1.0, -4.0]), np.array([1.5, -3.0])
    # max|a - b| = 1; max|a| + max|b| = 4 + 3.
    assert rel_error(a, b) == pytest.approx(1 / 7)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.zeros(2), np.full(2, 1e-12)) == pytest.approx(1e-12 / 1e-8)  # the 1e-8 floor
    with pytest.raises(ValueError, match="shapes differ"):
        rel_error(np.zeros(2), np.zeros(3))


def test_reference_error_divides_by_the_reference_only():
    ours, ref = np.array([1.0, -4.0]), np.array([1.5, -3.0])
    assert reference_error(ours, ref) == pytest.approx(1 / 3)
    # Twice as strict as rel_error when the two agree closely.
    close = ref + 1e-9
    assert reference_error(close, ref) == pytest.approx(2 * rel_error(close, ref), rel=1e-6)
    assert reference_error(np.array([0.0, 2e-3]), np.zeros(2)) == pytest.approx(2e-3)
    with pytest.raises(ValueError, match="reference"):
        reference_error(np.zeros((2, 1)), np.zeros(2))


def test_numerical_gradient_of_a_known_function():
    x = np.random.default_rng(0).standard_normal((3, 4))
    grad = numerical_gradient(lambda: float(np.sum(x**3)), x)
    assert rel_error(grad, 3 * x**2) < 1e-8
    # With an upstream gradient the result is d sum(f(x) * dout) / dx, and x is restored.
    before = x.copy()
    dout = np.random.default_rng(1).standard_normal((3, 4))
    grad = numerical_gradient(lambda: np.sin(x), x, dout)
    assert rel_error(grad, np.cos(x) * dout) < 1e-8
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_on_chosen_indices_leaves_the_others_zero():
    x = np.random.default_rng(2).standard_normal((4, 3))
    grad = numerical_gradient(lambda: float(np.sum(x**2)), x, indices=[(0, 1), (3, 2)])
    assert grad[0, 1] == pytest.approx(2 * x[0, 1]) and grad[3, 2] == pytest.approx(2 * x[3, 2])
    assert np.count_nonzero(grad) == 2


def built_affine():
    layer = Affine(units=3)
    layer.build((5,), np.random.default_rng(0), np.float64)
    layer.params["b"][...] = np.random.default_rng(1).standard_normal(3)
    return layer


def test_check_layer_reports_every_array_and_passes_a_correct_layer():
    x = np.random.default_rng(3).standard_normal((4, 5))
    errors = check_layer(built_affine(), x)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < 1e-7, errors


class WrongBiasGradient(Affine):
    """An affine whose bias gradient is off by 1%: the kind of bug the checker exists for."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["b"] = self.grads["b"] * 1.01
        return dx


def test_check_layer_catches_a_wrong_gradient_and_names_it():
    layer = WrongBiasGradient(units=3)
    layer.build((5,), np.random.default_rng(0), np.float64)
    errors = check_layer(layer, np.random.default_rng(3).standard_normal((4, 5)))
    assert errors["b"] > 1e-3
    assert errors["x"] < 1e-7 and errors["W"] < 1e-7


def test_check_layer_on_sampled_entries():
    x = np.random.default_rng(4).standard_normal((4, 5))
    errors = check_layer(built_affine(), x, max_entries=4)
    assert max(errors.values()) < 1e-7, errors


def test_away_from_kinks_moves_only_the_entries_near_a_kink():
    x = np.array([0.0, 0.004, -0.009, 0.5, -0.3, 0.995, 1.2])
    before = x.copy()
    out = away_from_kinks(x, kinks=(0.0, 1.0), gap=1e-2)
    np.testing.assert_array_equal(x, before)  # a copy
    for k in (0.0, 1.0):
        assert np.min(np.abs(out - k)) >= 1e-2
    far = np.array([False, False, False, True, True, False, True])
    np.testing.assert_array_equal(out[far], x[far])
    # Each moved entry stays on its own side of its kink.
    np.testing.assert_allclose(out[~far], [0.02, 0.02, -0.02, 0.98])
    assert away_from_kinks(np.zeros(2, dtype=np.float32)).dtype == np.float32
    assert away_from_kinks(np.zeros(2, dtype=np.int64)).dtype == np.float64


# --------------------------------------------------------------------------- kinks, ties, tolerances


def test_without_ties_spreads_entries_apart_in_their_order():
    from dlcore.gradcheck import without_ties

    x = np.array([[0.5, 0.5, 0.5], [0.501, -1.0, 0.2]])
    y = without_ties(x, gap=1e-2)
    assert y.shape == x.shape and not np.shares_memory(x, y)
    flat = np.sort(y.ravel())
    assert np.all(np.diff(flat) >= 1e-2 - 1e-12)
    assert list(np.argsort(y.ravel(), kind="stable")) == list(np.argsort(x.ravel(), kind="stable"))
    np.testing.assert_array_equal(x[1, 1:], y[1, 1:])  # entries already apart stay put


def test_gradient_check_input_moves_off_kinks_and_ties():
    from dlcore.gradcheck import gradient_check_input

    x = np.array([0.0, 0.004, -0.009, 0.3, 0.3, 0.305])
    y = gradient_check_input(x, kinks=(0.0,), ties=True)
    assert np.all(np.abs(y) >= 1e-2)
    assert np.all(np.diff(np.sort(y)) >= 1e-2 - 1e-12)


@pytest.mark.parametrize("layer_cls,params,x", [
    ("dlcore.activations.relu:ReLU", {}, np.array([[1e-7, -2e-7, 0.7, -0.4]])),
    ("dlcore.layers.pooling:MaxPool", {"size": 2}, np.full((1, 2, 2, 1), 0.3) + np.array([0, 1e-7, 0, 0]).reshape(1, 2, 2, 1)),
])
def test_the_kit_input_rescues_a_check_that_straddles_a_kink_or_a_tie(layer_cls, params, x):
    import importlib

    from dlcore.gradcheck import gradient_check_input, tolerance

    module, name = layer_cls.split(":")
    cls = getattr(importlib.import_module(module), name)
    layer = cls(params)
    layer.build(x.shape[1:], np.random.default_rng(0), np.float64)
    # h = 1e-6 straddles a kink or swaps a maximum 1e-7 away: the check reports a wrong gradient.
    assert check_layer(layer, x.copy(), training=False)["x"] > 1e-3
    safe = gradient_check_input(x, cls.kinks, cls.ties)
    assert check_layer(layer, safe, training=False)["x"] < tolerance(np.float64, "gradient")


def test_tolerances_come_from_one_table_by_dtype():
    from dlcore.gradcheck import TOLERANCES, tolerance
    from dlcore.testing import component_checks, layer_checks

    assert layer_checks.GRAD_TOL == component_checks.GRAD_TOL == TOLERANCES[np.dtype(np.float64)]["gradient"]
    assert layer_checks.FLOAT32_TOL == TOLERANCES[np.dtype(np.float32)]["against_float64"]
    with pytest.raises(KeyError, match="no 'gradient' tolerance for float32"):
        tolerance(np.float32, "gradient")
