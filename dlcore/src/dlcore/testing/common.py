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

from dlcore.component import Component
from dlcore.config import Config
from dlcore.errors import ConfigError
from dlcore.registry import KINDS


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


def check_schema(component_cls: type, config: Mapping) -> None:
    """The declarations a registry, the docs and the API read: all present and consistent.

    name, kind, one-line summary, api_version, a ``Config`` subclass exporting JSON
    Schema, ``examples`` that construct, defaults that construct when no field is
    required, and ``hyperparameters()`` that round-trips through JSON.
    """
    from dlcore import PLUGIN_API_VERSION

    who = component_cls.__name__
    assert issubclass(component_cls, Component), f"{who} is not a dlcore.component.Component"
    assert isinstance(component_cls.name, str) and component_cls.name, f"{who}: class attribute 'name' is empty"
    kinds = sorted(set(KINDS.values()))
    assert component_cls.kind in kinds, f"{who}: kind {component_cls.kind!r} is not one of {kinds}"
    summary = component_cls.summary
    assert isinstance(summary, str) and summary.strip(), f"{who}: class attribute 'summary' is empty"
    assert "\n" not in summary.strip(), f"{who}: 'summary' must be one line, got {summary!r}"
    assert component_cls.api_version == PLUGIN_API_VERSION, (
        f"{who}: api_version {component_cls.api_version!r} but this dlcore implements plugin API "
        f"version {PLUGIN_API_VERSION}"
    )
    schema_cls = component_cls.Config
    assert isinstance(schema_cls, type) and issubclass(schema_cls, Config), (
        f"{who}: Config must subclass dlcore.config.Config (extra='forbid', frozen)"
    )
    schema = schema_cls.model_json_schema()
    json.dumps(schema)
    assert schema.get("type") == "object", f"{who}: Config JSON Schema is not an object schema: {schema!r}"
    for field, info in schema_cls.model_fields.items():
        assert info.description, f"{who}: parameter {field!r} has no description (pydantic Field(description=...))"
    assert isinstance(component_cls.examples, tuple) and component_cls.examples, (
        f"{who}: 'examples' must be a non-empty tuple of valid configs"
    )
    unknown = set(component_cls.expected_failures) - set(_all_check_names())
    assert not unknown, f"{who}: expected_failures names unknown checks {sorted(unknown)}"

    with quiet():
        if not any(f.is_required() for f in schema_cls.model_fields.values()):
            try:
                component_cls()
            except ConfigError:
                pass  # all fields optional, but a cross-field rule may still refuse {} (e.g. path or id)
        obj = make(component_cls, config)
        params = obj.hyperparameters()
        text = json.dumps(params)
        again = make(component_cls, json.loads(text)).hyperparameters()
    assert again == params, f"{label(component_cls, config)}: hyperparameters() does not round-trip: {params} -> {again}"


def _all_check_names() -> list[str]:
    from dlcore.testing.kit import all_check_names

    return all_check_names()
