"""zero_init: weights initialized to zeros: every neuron computes the same thing."""

from __future__ import annotations

import numpy as np

from dlcore.events import DiagnosticEvent


def check_zero_init(net, init_type: str, init_warnings: list[str]):
    """A ``warning`` when the initializer is ``zeros``, warned at build, or a weight array is all zero."""
    zero_weights = [
        f"{i}.{key}"
        for i, layer in enumerate(net.children)
        for key, w in layer.regularized_params()
        if w.size and not np.any(w)
    ]
    if init_type != "zeros" and not init_warnings and not zero_weights:
        return None
    return DiagnosticEvent(
        code="zero_init",
        severity="warning",
        iteration=0,
        epoch=0.0,
        message=(
            "all-zero weight initialization: every neuron computes the same thing and gets the same "
            "gradient, so they never differ; use he (ReLU) or xavier"
        ),
        data={"init": init_type, "zero_weights": zero_weights, "warnings": list(init_warnings)},
    )
