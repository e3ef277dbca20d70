"""Conformance checks for losses, regularizers, optimizers, schedules, initializers, preprocessors."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from dlcore.errors import ConfigError
from dlcore.gradcheck import away_from_kinks, numerical_gradient, rel_error, tolerance
from dlcore.testing.common import assert_same_arrays, label, make, npz_roundtrip, quiet

GRAD_TOL = tolerance(np.float64, "gradient")  # the one table: dlcore.gradcheck.TOLERANCES

# --------------------------------------------------------------------------- losses


def _scores(n=4, c=5, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((n, c)), rng.integers(0, c, size=n)


def check_loss_gradient(component_cls, config: Mapping) -> None:
    """dscores matches the centred difference of the loss in float64."""
    where = label(component_cls, config)
    loss = make(component_cls, config)
    scores, y = _scores()
    with quiet():
        _, dscores = loss.forward(scores, y)
        numeric = numerical_gradient(lambda: loss.forward(scores, y)[0], scores)
    assert np.shape(dscores) == scores.shape, f"{where}: dscores shape {np.shape(dscores)} vs scores {scores.shape}"
    err = rel_error(dscores, numeric)
    assert err < GRAD_TOL, f"{where}: relative error of dscores vs numerical gradient {err:.3g} > {GRAD_TOL:g}"


def check_loss_initial(component_cls, config: Mapping) -> None:
    """With tiny scores the loss is close to ``expected_initial_loss(C)`` (C - 1 for svm, ln C for softmax)."""
    where = label(component_cls, config)
    loss = make(component_cls, config)
    for c in (3, 10):
        scores, y = _scores(n=64, c=c, scale=1e-5, seed=1)
        with quiet():
            value, _ = loss.forward(scores, y)
            expected = float(loss.expected_initial_loss(c))
        assert math.isfinite(expected), f"{where}: expected_initial_loss({c}) = {expected}"
        assert abs(float(value) - expected) <= 0.02 * max(1.0, abs(expected)), (
            f"{where}: with tiny scores and {c} classes the loss is {float(value):.4f}, "
            f"but expected_initial_loss({c}) says {expected:.4f}"
        )


def check_loss_contract(component_cls, config: Mapping) -> None:
    """A finite scalar mean over samples; dscores shaped and typed like scores; inputs untouched."""
    where = label(component_cls, config)
    loss = make(component_cls, config)
    for dtype in (np.float64, np.float32):
        scores, y = _scores(seed=2)
        scores = scores.astype(dtype)
        s_copy, y_copy = scores.copy(), y.copy()
        with quiet():
            value, dscores = loss.forward(scores, y)
            doubled, _ = loss.forward(np.concatenate([scores, scores]), np.concatenate([y, y]))
            probs = loss.probabilities(scores)
        assert np.ndim(value) == 0 and math.isfinite(float(value)), f"{where}: loss must be a finite scalar, got {value!r}"
        assert np.array_equal(scores, s_copy) and np.array_equal(y, y_copy), f"{where}: forward modified scores or y in place"
        assert np.shape(dscores) == scores.shape and dscores.dtype == dtype, (
            f"{where}: {np.dtype(dtype).name} scores gave dscores {np.shape(dscores)} {dscores.dtype}"
        )
        assert abs(float(doubled) - float(value)) <= 1e-5 * max(1.0, abs(float(value))), (
            f"{where}: the loss of a batch repeated twice ({float(doubled):.6g}) differs from the batch's "
            f"({float(value):.6g}): the loss must be a mean over samples, not a sum"
        )
        assert probs.shape == scores.shape and np.all(probs >= 0), f"{where}: probabilities() not (N, C) non-negative"
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5), f"{where}: probabilities() rows do not sum to 1"


# --------------------------------------------------------------------------- regularizers


def check_regularizer_gradient(component_cls, config: Mapping) -> None:
    """dw matches the centred difference of the penalty; penalty >= 0, zero at w = 0; w untouched."""
    where = label(component_cls, config)
    reg = make(component_cls, config)
    w = np.random.default_rng(0).standard_normal((4, 3))
    w = away_from_kinks(w, (0.0,), tolerance(np.float64, "kink_gap"))  # |w| has its kink at 0
    w_copy = w.copy()
    value, dw = reg.penalty(w)
    assert np.array_equal(w, w_copy), f"{where}: penalty() modified w in place"
    assert np.ndim(value) == 0 and float(value) >= 0, f"{where}: penalty must be a scalar >= 0, got {value!r}"
    assert np.shape(dw) == w.shape, f"{where}: dw shape {np.shape(dw)} vs w {w.shape}"
    numeric = numerical_gradient(lambda: reg.penalty(w)[0], w)
    err = rel_error(dw, numeric)
    assert err < GRAD_TOL, f"{where}: relative error of dw vs numerical gradient {err:.3g} > {GRAD_TOL:g}"
    zero, _ = reg.penalty(np.zeros((4, 3)))
    assert abs(float(zero)) < 1e-12, f"{where}: penalty of all-zero weights is {float(zero)}, not 0"


# --------------------------------------------------------------------------- optimizers

_LR = 0.05


def _quadratic(seed=0, dtype=np.float64):
    """f(w) = 0.5 * sum(a * (w - c)^2) over two arrays: well conditioned, minimum at c."""
    rng = np.random.default_rng(seed)
    a = {k: rng.uniform(0.5, 2.0, shape) for k, shape in (("W", (3, 4)), ("b", (4,)))}
    c = {k: rng.standard_normal(v.shape) for k, v in a.items()}
    # Start at distance >= 0.5 in every coordinate so one step of size lr cannot overshoot.
    w = {k: (c[k] + rng.choice([-1.0, 1.0], v.shape) * rng.uniform(0.5, 1.5, v.shape)).astype(dtype) for k, v in a.items()}

    def f(params):
        return float(sum(0.5 * np.sum(a[k] * (params[k] - c[k]) ** 2) for k in a))

    def grad(params):
        return {k: (a[k] * (params[k] - c[k])).astype(params[k].dtype) for k in a}

    return w, f, grad


def check_optimizer_descends(component_cls, config: Mapping) -> None:
    """One step decreases a convex quadratic; twenty end below the start; updates in place, dtype kept."""
    where = label(component_cls, config)
    for dtype in (np.float64, np.float32):
        opt = make(component_cls, config)
        params, f, grad = _quadratic(dtype=dtype)
        arrays = {k: id(v) for k, v in params.items()}
        f0 = f(params)
        opt.step(params, grad(params), _LR)
        f1 = f(params)
        assert {k: id(v) for k, v in params.items()} == arrays, f"{where}: step() replaced arrays instead of updating in place"
        assert all(v.dtype == dtype for v in params.values()), f"{where}: step() changed the dtype of {np.dtype(dtype).name} params"
        assert f1 < f0, f"{where}: one step with lr={_LR} on a convex quadratic went from {f0:.6g} to {f1:.6g}"
        for _ in range(19):
            opt.step(params, grad(params), _LR)
        f20 = f(params)
        assert math.isfinite(f20) and f20 < f0, f"{where}: after 20 steps the quadratic is {f20:.6g} (start {f0:.6g})"


def check_optimizer_state(component_cls, config: Mapping) -> None:
    """``state_dict`` round-trips through ``.npz``: a resumed optimizer continues identically."""
    where = label(component_cls, config)
    opt = make(component_cls, config)
    params, _, grad = _quadratic(seed=1)
    for _ in range(3):
        opt.step(params, grad(params), _LR)
    state = opt.state_dict()
    loaded = npz_roundtrip(state)
    resumed = make(component_cls, config)
    resumed.load_state_dict(loaded)
    assert_same_arrays(npz_roundtrip(resumed.state_dict()), loaded, f"{where}: state_dict after load_state_dict")
    twin = {k: v.copy() for k, v in params.items()}
    for _ in range(3):
        opt.step(params, grad(params), _LR)
        resumed.step(twin, grad(twin), _LR)
    for k in params:
        assert np.array_equal(params[k], twin[k]), (
            f"{where}: after load_state_dict the optimizer's steps differ from the original's on {k!r}: "
            "is some state kept outside slots and t?"
        )


# --------------------------------------------------------------------------- schedules

_EPOCHS = np.linspace(0.0, 60.0, 241)


def _warmup(schedule) -> float:
    return float(getattr(schedule.config, "warmup_epochs", 0.0) or 0.0)


def check_schedule_values(component_cls, config: Mapping) -> None:
    """factor(0) = 1 (so lr at epoch 0 is the base rate without warm-up); finite, >= 0, proportional to base."""
    where = label(component_cls, config)
    sched = make(component_cls, config)
    f0 = float(sched.factor(0.0))
    assert abs(f0 - 1.0) < 1e-9, f"{where}: factor(0) = {f0}, the schedule must start at the base rate"
    warm = _warmup(sched)
    if warm == 0:
        assert abs(sched.lr(0.1, 0.0) - 0.1) < 1e-12, f"{where}: lr(0.1, epoch 0) = {sched.lr(0.1, 0.0)}, not 0.1"
    else:
        at = sched.lr(0.1, warm)
        assert abs(at - 0.1 * float(sched.factor(warm))) < 1e-12, (
            f"{where}: at the end of warm-up (epoch {warm}) lr is {at}, not 0.1 * factor({warm})"
        )
    values = np.array([sched.lr(0.1, float(e)) for e in _EPOCHS])
    assert np.all(np.isfinite(values)) and np.all(values >= 0), (
        f"{where}: lr must be finite and >= 0 for epochs 0..60; got min {np.nanmin(values)}"
    )
    doubled = np.array([sched.lr(0.2, float(e)) for e in _EPOCHS])
    assert np.allclose(doubled, 2 * values, rtol=1e-9, atol=0), f"{where}: lr is not proportional to the base rate"


def check_schedule_monotone(component_cls, config: Mapping) -> None:
    """After warm-up the rate never increases (declare an expected failure for cyclic schedules)."""
    where = label(component_cls, config)
    sched = make(component_cls, config)
    epochs = _EPOCHS[_EPOCHS >= _warmup(sched)]
    values = np.array([sched.lr(0.1, float(e)) for e in epochs])
    rises = np.nonzero(np.diff(values) > 1e-12)[0]
    assert rises.size == 0, (
        f"{where}: lr rises from {values[rises[0]]:.6g} at epoch {epochs[rises[0]]:g} "
        f"to {values[rises[0] + 1]:.6g} at epoch {epochs[rises[0] + 1]:g}"
    )


# --------------------------------------------------------------------------- initializers

_INIT_SHAPES = (((20, 30), 20, 30), ((3, 3, 4, 8), 36, 72))


def check_initializer_draws(component_cls, config: Mapping) -> None:
    """Shape and dtype as asked, finite, and the same seed gives the same array."""
    where = label(component_cls, config)
    init = make(component_cls, config)
    for shape, fan_in, fan_out in _INIT_SHAPES:
        for dtype in (np.float32, np.float64):
            with quiet():
                w = init(shape, fan_in, fan_out, np.random.default_rng(0), dtype)
                again = init(shape, fan_in, fan_out, np.random.default_rng(0), dtype)
            assert isinstance(w, np.ndarray), f"{where}: returned {type(w).__name__}, not an ndarray"
            assert w.shape == shape, f"{where}: asked shape {shape}, got {w.shape}"
            assert w.dtype == dtype, f"{where}: asked dtype {np.dtype(dtype).name}, got {w.dtype}"
            assert np.all(np.isfinite(w)), f"{where}: non-finite values for shape {shape}"
            assert np.array_equal(w, again), f"{where}: the same seed gave different arrays; use only the rng passed in"


# --------------------------------------------------------------------------- preprocessors


def _preprocessor_inputs():
    rng = np.random.default_rng(0)
    return {
        "images (N, C, H, W)": (3 * rng.standard_normal((8, 3, 4, 4)) + 1, 3 * rng.standard_normal((5, 3, 4, 4)) + 1),
        "vectors (N, D)": (3 * rng.standard_normal((8, 5)) + 1, 3 * rng.standard_normal((5, 5)) + 1),
    }


def check_preprocessor(component_cls, config: Mapping) -> None:
    """fit and transform leave their input untouched; state is arrays that round-trip; fit is deterministic.

    Runs on images and on vectors; a preprocessor may refuse one of them with a
    ConfigError or ValueError, not both.
    """
    where = label(component_cls, config)
    supported = []
    for layout, (train, new) in _preprocessor_inputs().items():
        prep = make(component_cls, config)
        train_copy = train.copy()
        try:
            with quiet():
                prep.fit(train)
        except (ConfigError, ValueError):
            continue
        supported.append(layout)
        assert np.array_equal(train, train_copy), f"{where}, {layout}: fit() modified its input"
        new_copy = new.copy()
        with quiet():
            out = prep.transform(new)
        assert np.array_equal(new, new_copy), f"{where}, {layout}: transform() modified its input in place"
        assert out is not new, f"{where}, {layout}: transform() must return a new array"
        assert out.shape[0] == new.shape[0] and np.all(np.isfinite(out)), f"{where}, {layout}: bad transform output"
        assert all(isinstance(v, np.ndarray) for v in prep.state.values()), (
            f"{where}, {layout}: state must hold arrays only (it is saved to .npz with the model)"
        )
        loaded = npz_roundtrip(prep.state)
        restored = make(component_cls, config)
        restored.state = dict(loaded)
        with quiet():
            out2 = restored.transform(new)
        assert np.array_equal(out, out2), f"{where}, {layout}: a preprocessor restored from its saved state transforms differently"
        refit = make(component_cls, config)
        with quiet():
            refit.fit(train)
        assert_same_arrays(refit.state, prep.state, f"{where}, {layout}: two fits on the same data")
    assert supported, f"{where}: fit() refused both images (N, C, H, W) and vectors (N, D)"


LOSS_CHECKS = (check_loss_gradient, check_loss_initial, check_loss_contract)
REGULARIZER_CHECKS = (check_regularizer_gradient,)
OPTIMIZER_CHECKS = (check_optimizer_descends, check_optimizer_state)
SCHEDULE_CHECKS = (check_schedule_values, check_schedule_monotone)
INITIALIZER_CHECKS = (check_initializer_draws,)
PREPROCESSOR_CHECKS = (check_preprocessor,)
