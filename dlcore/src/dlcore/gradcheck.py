"""Centred-difference gradient checking (after CS231n's ``gradient_check.py``).

The relative error is taken per array, ``max|a - b| / max(1e-8, max|a| + max|b|)``:
the element-wise form flags correct gradients whose entries are near zero.

- :func:`check_layer`: every analytic gradient of a built layer (input and each
  parameter) against centred differences, in one mode;
- :func:`numerical_gradient`: the centred difference of any function of an array;
- :func:`away_from_kinks`: inputs moved off the points where a function has no
  derivative (ReLU's 0), so that the centred difference does not straddle them;
- :func:`without_ties`: inputs spread apart so that no two are within a gap of
  each other (max pooling's ties, where the maximum switches);
- :func:`gradient_check_input`: both, for a layer's declared ``kinks`` and ``ties``
  (what the conformance kit feeds every gradient check, Chainer style);
- :data:`TOLERANCES` and :func:`tolerance`: the bounds, one table by dtype;
- :func:`reference_error`: the error against a reference implementation,
  ``max|ours - ref| / max|ref|``, the measure the PyTorch parity tests use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

#: The bounds of every check, by dtype, in one table (Chainer's habit).
#:
#: - ``gradient``: rel_error of analytic against centred-difference gradients, h = 1e-6.
#:   In float64 a correct layer scores below 1e-7 and a wrong one above 1e-3; float32
#:   has no entry: its rounding (1e-7 relative) divided by 2h swamps the difference.
#: - ``against_float64``: rel_error of a float32 run (forward, gradients) against the same
#:   arrays in float64: a few float32 roundings through a small layer, with margin.
#: - ``kink_gap``: the least distance kept between a gradient-check input and a kink or
#:   another input where ties matter (|x - k| < gap is moved); h is 1e-4 of it.
TOLERANCES: dict[np.dtype, dict[str, float]] = {
    np.dtype(np.float64): {"gradient": 1e-6, "kink_gap": 1e-2},
    np.dtype(np.float32): {"against_float64": 1e-4},
}


def tolerance(dtype, what: str) -> float:
    """The bound ``what`` (``"gradient"``, ``"against_float64"``, ``"kink_gap"``) for ``dtype``."""
    row = TOLERANCES.get(np.dtype(dtype), {})
    if what not in row:
        raise KeyError(f"no {what!r} tolerance for {np.dtype(dtype).name} (the table has {sorted(row)})")
    return row[what]


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Relative error of two arrays: max|a - b| / max(1e-8, max|a| + max|b|)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1e-8, np.max(np.abs(a)) + np.max(np.abs(b))))


def reference_error(ours: np.ndarray, reference: np.ndarray) -> float:
    """Error of ``ours`` relative to a reference array: max|ours - ref| / max|ref|.

    Stricter than :func:`rel_error` (whose denominator counts both arrays): this is the
    measure for comparing with a trusted implementation such as PyTorch in float64.
    An all-zero reference gives max|ours| (an absolute error).
    """
    ours = np.asarray(ours, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if ours.shape != reference.shape:
        raise ValueError(f"shapes differ: {ours.shape} vs reference {reference.shape}")
    if ours.size == 0:
        return 0.0
    scale = float(np.max(np.abs(reference)))
    diff = float(np.max(np.abs(ours - reference)))
    return diff / scale if scale > 0 else diff


def away_from_kinks(x: np.ndarray, kinks: Iterable[float] = (0.0,), gap: float = 1e-2) -> np.ndarray:
    """A copy of x with every entry at least ``gap`` away from each kink (Chainer's habit).

    An entry closer than ``gap`` to a kink k moves to k + 2*gap or k - 2*gap, on its
    own side of k, so a centred difference with h << gap never straddles the kink.
    Kinks must be more than 3 * gap apart.

    Inputs:
    - x: array, any shape (a float copy is returned; x is not modified).
    - kinks: the points where the function has no derivative (ReLU, ELU: 0).
    - gap: the least distance left between an entry and a kink.

    Returns:
    - a new float array shaped like x.
    """
    x = np.array(x, dtype=np.result_type(np.asarray(x).dtype, np.float32))
    for k in kinks:
        near = np.abs(x - k) < gap
        x[near] = np.where(x[near] >= k, k + 2 * gap, k - 2 * gap)
    return x


def without_ties(x: np.ndarray, gap: float = 1e-2) -> np.ndarray:
    """A copy of x whose entries are pairwise at least ``gap`` apart, in the same order.

    Entries are visited from the smallest up; one closer than ``gap`` to the one below it
    moves up to exactly ``gap`` above it.  Where the maximum of a window is decided
    (max pooling, maxout), a centred difference with h << gap then never swaps it.

    Inputs:
    - x: array, any shape (not modified).
    - gap: the least distance between any two entries.

    Returns:
    - a new float array shaped like x.
    """
    x = np.array(x, dtype=np.result_type(np.asarray(x).dtype, np.float32))
    flat = x.reshape(-1)
    order = np.argsort(flat, kind="stable")
    values = flat[order]
    # y[i] = max(v[i], y[i-1] + gap) is max over j <= i of v[j] + (i - j) * gap.
    steps = np.arange(values.size) * gap
    flat[order] = np.maximum.accumulate(values - steps) + steps
    return x


def gradient_check_input(x: np.ndarray, kinks: Iterable[float] = (), ties: bool = False, gap: float | None = None) -> np.ndarray:
    """x made safe for centred differences: off every kink, and untied when ties matter.

    Inputs:
    - x: the input to check a layer on.
    - kinks: input values where the function has no derivative (a layer's ``kinks``).
    - ties: whether equal inputs are non-differentiable points (a layer's ``ties``).
    - gap: the distance to keep; default ``tolerance(float64, "kink_gap")``, 0.01.

    Returns:
    - a new array shaped like x (x itself is not modified).
    """
    gap = tolerance(np.float64, "kink_gap") if gap is None else gap
    out = np.array(x)
    if ties:
        out = without_ties(out, gap)
    kinks = tuple(kinks)
    if kinks:
        out = away_from_kinks(out, kinks, gap)
    if ties and kinks:  # moving entries off a kink may bring two together: untie once more
        out = without_ties(out, gap)
        out = away_from_kinks(out, kinks, gap)
    return out


def numerical_gradient(
    f: Callable[[], float | np.ndarray],
    x: np.ndarray,
    dout: np.ndarray | None = None,
    h: float = 1e-6,
    indices: Iterable[tuple[int, ...]] | None = None,
) -> np.ndarray:
    """Centred-difference gradient of ``sum(f() * dout)`` with respect to ``x``.

    Inputs:
    - f: a function of no arguments that reads ``x`` (perturbed in place and restored).
    - x: the array to differentiate against, any shape, float64 for meaningful results.
    - dout: upstream gradient of f's output (None when f returns a scalar).
    - h: step.
    - indices: only these entries (others stay 0); default every entry.

    Returns:
    - grad: array shaped like x.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = indices if indices is not None else np.ndindex(*x.shape)
    for ix in it:
        old = x[ix]
        x[ix] = old + h
        # A copy: f may return a view of x (flatten), which the next perturbation would change.
        pos = np.array(f(), dtype=np.float64)
        x[ix] = old - h
        neg = np.array(f(), dtype=np.float64)
        x[ix] = old
        diff = pos - neg
        grad[ix] = np.sum(diff * dout) / (2 * h) if dout is not None else float(diff) / (2 * h)
    return grad


def sample_indices(shape: tuple[int, ...], count: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """``count`` distinct random indices into an array of ``shape`` (all of them if fewer)."""
    size = int(np.prod(shape))
    flat = rng.choice(size, size=min(count, size), replace=False)
    return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in flat]


def check_layer(
    layer,
    x: np.ndarray,
    training: bool = True,
    seed: int = 0,
    h: float = 1e-6,
    max_entries: int | None = None,
) -> dict[str, float]:
    """Relative error of a built layer's analytic gradients against centred differences.

    Inputs:
    - layer: a built :class:`dlcore.component.Layer` whose params are float64.
    - x: float64 input, internal layout (N, D) or (N, H, W, C).
    - training: mode to check in; stochastic layers get a fresh generator seeded
      ``seed`` on every call so the same mask is drawn each time.
    - max_entries: check only this many sampled entries per array (None: all).

    Returns:
    - {"x": err, "<param>": err, ...}
    """
    rng_out = np.random.default_rng(seed + 1)
    out = layer.forward(x, training=training, rng=np.random.default_rng(seed))
    dout = rng_out.standard_normal(out.shape)
    layer.forward(x, training=training, rng=np.random.default_rng(seed))
    dx = layer.backward(dout.astype(out.dtype))
    analytic = {"x": dx}
    analytic.update({k: v.copy() for k, v in layer.grads.items()})

    def f():
        return layer.forward(x, training=training, rng=np.random.default_rng(seed))

    errors = {}
    pick = np.random.default_rng(seed + 2)
    for name, arr in [("x", x)] + list(layer.params.items()):
        idx = sample_indices(arr.shape, max_entries, pick) if max_entries else None
        num = numerical_gradient(f, arr, dout, h=h, indices=idx)
        ana = analytic[name]
        if idx is not None:
            sel = tuple(np.array(i) for i in zip(*idx))
            errors[name] = rel_error(ana[sel], num[sel])
        else:
            errors[name] = rel_error(ana, num)
    return errors
