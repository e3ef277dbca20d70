"""Property: a spec composed from the registry either fails with field paths or validates, infers, builds and trains.

Components and parameter values are drawn around each component's own schema bounds
(a bound, just past it, a small value, sometimes a wrong type), so the test follows
the registry: a new component is exercised without editing this file.
"""

from __future__ import annotations

import typing

import annotated_types as at
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dlcore.errors import ConfigError, SpecError
from dlcore.registry import default_registry
from dlcore.spec import build, infer, validate
from dlcore.spec.sections import TOP_LEVEL_KEYS
from dlcore.training import TrainingFailed, train

REGISTRY = default_registry()
WRONG = st.sampled_from(["x", "3", [], [1], {}, None, True, 1.5, -1, float("nan"), 10**12])
SMALL = 6  # widths and counts stay tiny: one epoch must take milliseconds


def _bounds(field) -> tuple:
    """(low, high, low is exclusive, high is exclusive) of a pydantic field; None where unbounded."""
    lo = hi = None
    lo_open = hi_open = False
    for m in field.metadata:
        if isinstance(m, (at.Ge, at.Gt)):
            lo, lo_open = (m.ge, False) if isinstance(m, at.Ge) else (m.gt, True)
        if isinstance(m, (at.Le, at.Lt)):
            hi, hi_open = (m.le, False) if isinstance(m, at.Le) else (m.lt, True)
    return lo, hi, lo_open, hi_open


def _literals(annotation) -> list:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    out = []
    for arg in typing.get_args(annotation):
        out += [None] if arg is type(None) else _literals(arg)
    return out


def _inside_and_past(field) -> tuple[list, list]:
    """Values at and near ``field``'s bounds that it accepts, and values just past them."""
    ann = field.annotation
    lo, hi, lo_open, hi_open = _bounds(field)
    if ann is int:
        lo = 0 if lo is None else int(lo) + int(lo_open)
        inside = [lo, lo + 1, lo + 2] + ([int(hi)] if hi is not None and hi <= lo + SMALL else [])
        return inside, [lo - 1] + ([int(hi) + 1] if hi is not None else [])
    if ann is float:
        a = 0.0 if lo is None else float(lo)
        b = a + 2.0 if hi is None else float(hi)
        inside = [(a + b) / 2, a + 1e-6 if lo_open else a, b - 1e-6 if hi_open else b]
        return inside, ([a] if lo_open else [a - 1]) + ([b] if hi_open else [b + 1] if hi is not None else [])
    if ann is bool:
        return [True, False], ["yes"]
    if _literals(ann):
        return _literals(ann), ["no such option"]
    if field.default is not None and not callable(field.default):
        return [field.default], [None]
    return [None], []


@st.composite
def value_for(draw, field):
    """Mostly a value ``field`` accepts (at or near a bound), sometimes one just past a bound or a wrong type."""
    inside, past = _inside_and_past(field)
    roll = draw(st.integers(0, 39))  # hypothesis leans to small draws: those are the accepted values
    if roll == 39:
        return draw(WRONG)
    if roll == 38 and past:
        return draw(st.sampled_from(past))
    return draw(st.sampled_from(inside))


@st.composite
def component(draw, group: str, names=None, key: str = "type") -> dict:
    name = draw(st.sampled_from(names or REGISTRY.names(group)))
    entry = {key: name}
    for param, field in REGISTRY.get(group, name).Config.model_fields.items():
        if field.is_required() or draw(st.booleans()):
            entry[param] = draw(value_for(field))
    return entry


LEAVES = [n for n in REGISTRY.names("layers") if n not in ("inception", "residual")]


@st.composite
def layer(draw, depth: int = 0) -> dict:
    kind = draw(st.sampled_from(["leaf", "leaf", "activation", "residual", "inception"] if depth < 2 else ["leaf", "activation"]))
    if kind == "activation":
        return draw(component("activations"))
    if kind == "leaf":
        entry = draw(component("layers", LEAVES))
        for wide in ("units", "filters"):
            if isinstance(entry.get(wide), int) and not isinstance(entry[wide], bool):
                entry[wide] = min(entry[wide], SMALL)
        return entry
    if kind == "residual":
        entry = {"type": "residual", "layers": draw(st.lists(layer(depth + 1), min_size=draw(st.sampled_from([0, 1, 1, 1])), max_size=2))}
        if draw(st.booleans()):
            entry["shortcut"] = draw(st.sampled_from(["identity", "projection", "other"]))
        return entry
    branch = st.lists(layer(depth + 1), min_size=draw(st.sampled_from([0, 1, 1, 1])), max_size=2)
    return {"type": "inception", "branches": draw(st.lists(branch, min_size=draw(st.sampled_from([0, 1, 1, 1])), max_size=2))}


SPIRAL = st.fixed_dictionaries({"type": st.just("spiral"), "points_per_class": st.sampled_from([1, 2, 4]), "classes": st.sampled_from([2, 3])})
SHAPES = st.fixed_dictionaries(
    {"type": st.just("shapes"), "size": st.sampled_from([8, 9]), "count": st.sampled_from([4, 8, 12]),
     "classes": st.sampled_from([2, 4]), "channels": st.sampled_from([1, 3])}
)
DATASETS = st.one_of(SHAPES, SPIRAL, SHAPES)


@st.composite
def job_spec(draw) -> dict:
    dataset = draw(DATASETS)
    if draw(st.booleans()):
        dataset["val_fraction"] = draw(st.sampled_from([1e-9, 0.25, 0.5, 0.999, 1e-9, 0.25, 0.5, 0.999, 0.0, 1.0]))
    if draw(st.booleans()):
        dataset["preprocess"] = draw(st.lists(component("preprocessors"), max_size=2))
    spec = {"dataset": dataset}
    if draw(st.booleans()):
        model = draw(component("architectures", key="architecture"))
        for wide in ("width", "filters", "stem_filters", "hidden"):
            if isinstance(model.get(wide), int) and not isinstance(model[wide], bool):
                model[wide] = min(model[wide], SMALL)
        spec["model"] = model
    else:
        layers = draw(st.lists(layer(), min_size=draw(st.sampled_from([0, 1, 1, 1])), max_size=3))
        if draw(st.integers(0, 4)):  # mostly end with the right head, so many specs validate
            layers += [{"type": "flatten"}, {"type": "affine", "units": dataset["classes"]}]
        spec["model"] = {"layers": layers}
    for key, group in (("init", "initializers"), ("loss", "losses"), ("optimizer", "optimizers"), ("schedule", "schedules")):
        if draw(st.booleans()):
            spec[key] = draw(component(group))
    if draw(st.booleans()):
        spec["regularization"] = draw(st.lists(component("regularizers"), max_size=2))
    spec["training"] = {
        "epochs": 1,
        "batch_size": draw(st.sampled_from([1, 3, 64])),
        "dtype": draw(st.sampled_from(["float32", "float64"])),
        "checkpoint_every": draw(st.sampled_from([None, 1, 10**6])),
    }
    if draw(st.booleans()):
        spec["training"]["early_stopping"] = {"metric": draw(st.sampled_from(["val_loss", "val_accuracy"])), "patience": 1}
    return spec


# composed specs may name the zeros initializer on purpose; its warning is tested elsewhere
@pytest.mark.filterwarnings("ignore:all-zero initialization")
@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(job_spec())
def test_a_composed_spec_fails_with_field_paths_or_validates_builds_and_trains(spec):
    try:
        normalized = validate(spec)
    except SpecError as exc:
        event("invalid")
        assert exc.errors
        for error in exc.errors:
            assert isinstance(error, ConfigError) and error.message
            root = error.field.split(".")[0].split("[")[0]
            assert root in TOP_LEVEL_KEYS, error.field
        return
    assert validate(normalized.to_dict()) == normalized  # the normalized spec is a fixed point
    table = infer(spec)
    model = build(spec)
    assert sum(p.size for p in model.params().values()) == table["total_params"]
    assert all(p.dtype == np.dtype(spec["training"]["dtype"]) for p in model.params().values())
    try:
        result = train(spec)
    except TrainingFailed as exc:  # data-dependent failures only (an empty split, a diverging loss)
        assert exc.code in ("bad_data", "nan_loss"), exc
        event(f"training failed: {exc.code}")
        return
    event("trained")
    x = np.zeros((2, *model.sample_shape))
    assert result.model.predict(x).shape == (2,)
    assert result.model.predict_proba(x).shape == (2, model.num_classes)
