"""Checks every component kind shares, and the helpers the other check modules use.

A check is a plain function ``check_xxx(component_cls, config) -> None`` that
raises ``AssertionError`` with a message saying what broke and how to see it,
or :class:`CheckSkipped` when it cannot apply (a missing optional module).
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping
from contextlib import contextmanager

import numpy as np


class CheckSkipped(Exception):
    """A check that does not apply here; the message says why (pytest shows it as a skip)."""


def label(component_cls: type, config: Mapping) -> str:
    """``Conv2D({'filters': 2})``: names the example a failure happened on."""
    return f"{component_cls.__name__}({dict(config)!r})"


def make(component_cls: type, config: Mapping):
    """A component instance from an example config (a copy: components must not keep the caller's dict)."""
    return component_cls(json.loads(json.dumps(dict(config))))


@contextmanager
def quiet():
    """Silence warnings components raise on purpose (e.g. zeros init) while the kit runs them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            yield


def npz_roundtrip(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Save ``arrays`` with ``np.savez`` to memory and load them back with ``allow_pickle=False``.

    Fails (AssertionError) when a value is not a plain numeric array that ``.npz`` can hold.
    """
    buf = io.BytesIO()
    for key, arr in arrays.items():
        assert isinstance(arr, np.ndarray) or np.isscalar(arr), (
            f"{key!r} is a {type(arr).__name__}, not an array: it cannot be saved to .npz"
        )
        assert np.asarray(arr).dtype != object, f"{key!r} has dtype object: it cannot be saved without pickle"
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def assert_same_arrays(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], what: str) -> None:
    """Two dicts of arrays with the same keys, shapes, dtypes and values (NaN equal to NaN)."""
    assert sorted(a) == sorted(b), f"{what}: keys differ: {sorted(a)} vs {sorted(b)}"
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        assert x.shape == y.shape, f"{what}: {key!r} shape {x.shape} vs {y.shape}"
        assert x.dtype == y.dtype, f"{what}: {key!r} dtype {x.dtype} vs {y.dtype}"
        assert np.array_equal(x, y, equal_nan=True), f"{what}: {key!r} values differ"


# --------------------------------------------------------------------------- shared checks
