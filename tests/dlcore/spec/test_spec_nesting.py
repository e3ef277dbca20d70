"""Deeply nested specs: validation stays linear in the nesting and refuses what would recurse too far."""

from __future__ import annotations

import time

import pytest

from dlcore.errors import SpecError
from dlcore.spec import infer, validate
from dlcore.spec.validate import MAX_NESTING


def residuals(depth: int) -> dict:
    entry = {"type": "relu"}
    for _ in range(depth):
        entry = {"type": "residual", "layers": [entry]}
    return {"dataset": {"type": "spiral"}, "model": {"layers": [entry, {"type": "affine", "units": 3}]}}


def inceptions(depth: int) -> dict:
    entry = {"type": "relu"}
    for _ in range(depth):
        entry = {"type": "inception", "branches": [[entry]]}
    layers = [entry, {"type": "flatten"}, {"type": "affine", "units": 4}]
    return {"dataset": {"type": "shapes", "size": 8, "count": 8}, "model": {"layers": layers}}


@pytest.mark.parametrize("make", [residuals, inceptions])
def test_nesting_to_the_limit_is_fast(make):
    # each level used to infer its stack twice: 20 levels took 10 s, 25 several minutes
    started = time.perf_counter()
    table = infer(make(MAX_NESTING))
    assert time.perf_counter() - started < 5
    row, depth = table["layers"][0], 1
    while row.get("layers") or row.get("branches"):
        row = row["layers"][0] if "layers" in row else row["branches"][0][0]
        depth += 1
    assert depth == MAX_NESTING + 1  # the blocks and the relu inside them


@pytest.mark.parametrize("make, step", [(residuals, ".layers[0]"), (inceptions, ".branches[0][0]")])
@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 5000])
def test_nesting_past_the_limit_is_a_spec_error_at_the_path(make, step, depth):
    with pytest.raises(SpecError) as info:
        validate(make(depth))
    (error,) = info.value.errors
    assert error.field.startswith("model.layers[0]" + step * 3)
    assert error.field.startswith("model.layers") and "deep" in error.message


def test_any_deeply_nested_value_is_a_spec_error_not_a_recursion_error():
    value: list = []
    for _ in range(3000):
        value = [value]
    with pytest.raises(SpecError) as info:
        validate({"dataset": {"type": "spiral"}, "model": {"architecture": "mlp"}, "training": {"epochs": value}})
    assert info.value.errors[0].field.startswith("training.epochs[0][0]")
