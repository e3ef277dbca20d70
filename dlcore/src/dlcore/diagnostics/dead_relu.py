"""dead_relu: a large fraction of a ReLU layer's units never activate."""

from __future__ import annotations

import numpy as np

from dlcore.events import DiagnosticEvent


def relu_activity(net, x: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """For each top-level ``relu`` layer of ``net``: (index, per-unit 'ever active' booleans).

    Inputs: net: a built Sequential; x: (N, ...) internal-layout batch (preprocessed).
    Runs the stack in evaluation mode layer by layer; a unit is one output feature
    (one position and channel for images).
    """
    out = []
    h = x
    for i, layer in enumerate(net.children):
        h = layer.forward(h, training=False)
        if layer.name == "relu":
            out.append((i, np.any(h > 0, axis=0).ravel()))
    return out


def check_dead_relu(activity: list[tuple[int, np.ndarray]], threshold: float, iteration: int, epoch: float):
    """A ``warning`` naming every ReLU layer whose never-active fraction is >= ``threshold``, else None."""
    dead = [(i, float(1.0 - active.mean())) for i, active in activity if active.size]
    bad = [(i, f) for i, f in dead if f >= threshold]
    if not bad:
        return None
    parts = ", ".join(f"model.layers[{i}] {f:.0%}" for i, f in bad)
    return DiagnosticEvent(
        code="dead_relu",
        severity="warning",
        iteration=iteration,
        epoch=epoch,
        message=(
            f"ReLU units that never activate on training data: {parts}; lower the learning rate, "
            f"use he initialization or try leaky_relu"
        ),
        data={"layers": [{"index": i, "dead_fraction": f} for i, f in bad], "threshold": threshold},
    )
