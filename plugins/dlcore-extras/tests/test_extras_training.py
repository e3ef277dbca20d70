"""With dlcore-extras installed, specs may name its components and train like built-ins."""

from __future__ import annotations

import pytest

from dlcore.registry import default_registry
from dlcore.training.trainer import train


def test_every_extras_component_is_found_through_entry_points():
    registry = default_registry()
    assert {"gelu", "silu", "mish"} <= set(registry.names("activations"))
    assert {"layernorm", "groupnorm", "depthwise_conv2d"} <= set(registry.names("layers"))
    assert "mobilenet" in registry.names("architectures")


def test_a_model_naming_gelu_and_layernorm_trains_on_spiral():
    spec = {
        "dataset": {"type": "spiral"},
        "model": {
            "layers": [
                {"type": "affine", "units": 32},
                {"type": "layernorm"},
                {"type": "gelu"},
                {"type": "affine", "units": 32},
                {"type": "silu"},
                {"type": "affine", "units": 3},
            ]
        },
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 30, "batch_size": 32, "seed": 0, "dtype": "float64"},
    }
    result = train(spec)
    first, last = result.history[0]["train_loss"], result.history[-1]["train_loss"]
    assert last < 0.5 * first, (first, last)
    assert result.metrics["val_accuracy"] > 0.9


@pytest.mark.slow
def test_mobilenet_learns_digits():
    # About 3 s on 2 cores: three epochs of a 2-block MobileNet on the 8x8 digits.
    spec = {
        "dataset": {"type": "digits"},
        "model": {"architecture": "mobilenet", "blocks": 2, "filters": 8},
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 3, "batch_size": 64, "seed": 0},
    }
    result = train(spec)
    first, last = result.history[0]["train_loss"], result.history[-1]["train_loss"]
    assert last < 0.7 * first, (first, last)
    assert result.metrics["val_accuracy"] > 0.5  # chance is 0.1
