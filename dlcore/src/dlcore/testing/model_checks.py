"""Conformance checks for architectures and datasets."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from dlcore.errors import ConfigError
from dlcore.layers.sequential import Sequential, make_layer
from dlcore.layout import shape_to_internal
from dlcore.testing.common import label, make, quiet

#: Public per-sample shapes an architecture is tried on; it may refuse some with a ConfigError.
ARCHITECTURE_SHAPES = ((1, 8, 8), (3, 16, 16), (10,))
NUM_CLASSES = 3


def check_architecture_layers(component_cls, config: Mapping) -> None:
    """``layers(shape, C)`` is a pure list of spec entries that build and end in (C,) scores.

    Each entry is built with ``dlcore.layers.sequential.make_layer``; the chain's
    shape inference must say ``(C,)`` and a float64 forward of two samples must
    give finite ``(2, C)`` scores.  Tried on (1, 8, 8), (3, 16, 16) and (10,); the
    architecture may refuse some shapes with a ConfigError, not all.
    """
    where = label(component_cls, config)
    arch = make(component_cls, config)
    supported = []
    refusals = []
    for shape in ARCHITECTURE_SHAPES:
        try:
            entries = arch.layers(shape, NUM_CLASSES)
        except ConfigError as exc:
            refusals.append(f"{shape}: {exc}")
            continue
        supported.append(shape)
        assert isinstance(entries, list) and entries, f"{where}: layers{shape} returned {type(entries).__name__}, not a list"
        assert all(isinstance(e, dict) and isinstance(e.get("type"), str) for e in entries), (
            f"{where}: every entry of layers{shape} must be a dict with a 'type' string"
        )
        assert arch.layers(shape, NUM_CLASSES) == entries, f"{where}: layers{shape} is not a pure function of its arguments"
        with quiet():
            built = [make_layer(entry, field=f"layers[{i}]") for i, entry in enumerate(entries)]
            stack = Sequential.of(built)
            in_shape = shape_to_internal(shape)
            info = stack.infer(in_shape)
            assert tuple(info.out_shape) == (NUM_CLASSES,), (
                f"{where}: for input {shape} the stack ends in {tuple(info.out_shape)}, not ({NUM_CLASSES},) scores"
            )
            stack.build(in_shape, np.random.default_rng(0), dtype=np.float64)
            x = np.random.default_rng(1).standard_normal((2, *in_shape))
            scores = stack.forward(x, training=False)
        assert scores.shape == (2, NUM_CLASSES) and np.all(np.isfinite(scores)), (
            f"{where}: for input {shape} forward gave {scores.shape} scores (finite: {bool(np.all(np.isfinite(scores)))})"
        )
    assert supported, f"{where}: refused every sample shape: " + "; ".join(refusals)


def check_dataset_load(component_cls, config: Mapping) -> None:
    """sample_shape and num_classes (declared without data) agree with load(); labels in range; seeded."""
    where = label(component_cls, config)
    ds = make(component_cls, config)
    shape = tuple(int(s) for s in ds.sample_shape())
    classes = int(ds.num_classes())
    assert classes >= 2, f"{where}: num_classes() = {classes}; a classification data set needs at least 2"
    with quiet():
        x, y = ds.load()
        x2, y2 = make(component_cls, config).load()
    assert isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating), f"{where}: x must be a float array"
    assert x.shape[1:] == shape, f"{where}: sample_shape() says {shape}, load() gave samples of {x.shape[1:]}"
    assert x.shape[0] >= 1 and np.all(np.isfinite(x)), f"{where}: x is empty or not finite"
    assert isinstance(y, np.ndarray) and y.shape == (x.shape[0],), f"{where}: y must be ({x.shape[0]},), got {np.shape(y)}"
    assert np.issubdtype(y.dtype, np.integer), f"{where}: labels must be integers, got {y.dtype}"
    assert y.min() >= 0 and y.max() < classes, f"{where}: labels span [{y.min()}, {y.max()}], outside [0, {classes})"
    assert np.array_equal(x, x2) and np.array_equal(y, y2), f"{where}: two loads of one config (one seed) differ"


ARCHITECTURE_CHECKS = (check_architecture_layers,)
DATASET_CHECKS = (check_dataset_load,)
