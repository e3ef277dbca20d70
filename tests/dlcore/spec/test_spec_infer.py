"""infer(): the table equals the built model, for stacks and every architecture, several shapes."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.layout import to_public
from dlcore.registry import default_registry
from dlcore.spec import build, infer

CNN = {
    "dataset": {"type": "shapes", "size": 16, "count": 40},
    "model": {
        "layers": [
            {"type": "conv2d", "filters": 4, "size": 3, "pad": 1},
            {"type": "spatial_batchnorm"},
            {"type": "relu"},
            {"type": "maxpool", "size": 2},
            {"type": "conv2d", "filters": 6, "size": 3},
            {"type": "relu"},
            {"type": "flatten"},
            {"type": "affine", "units": 4},
        ]
    },
    "training": {"dtype": "float64", "batch_size": 8},
}


def layer_outputs(model, x_public):
    """Public output shape of every top-level layer of a built model for input x."""
    from dlcore.layout import to_internal

    h = to_internal(x_public)
    shapes = []
    for layer in model.net.children:
        h = layer.forward(h, training=False)
        shapes.append(list(to_public(h).shape[1:]))
    return shapes


def check_infer_matches_build(spec):
    table = infer(spec)
    model = build(spec)
    x = np.random.default_rng(0).normal(size=(2, *table["input_shape"]))
    assert [row["output_shape"] for row in table["layers"]] == layer_outputs(model, x)
    n_params = sum(int(v.size) for v in model.params().values())
    assert table["total_params"] == n_params
    assert table["layers"][-1]["output_shape"] == [table["num_classes"]]
    return table


def test_conv_stack_table():
    table = check_infer_matches_build(CNN)
    assert table["input_shape"] == [3, 16, 16]
    assert table["layers"][0]["params"] == (3 * 3 * 3 + 1) * 4
    assert table["layers"][0]["flops"] >= 2 * 3 * 3 * 3 * 4 * 16 * 16
    assert table["layers"][3]["output_shape"] == [4, 8, 8]
    # memory: every activation (input included) for one batch in float64
    elements = 3 * 16 * 16 + sum(int(np.prod(r["output_shape"])) for r in table["layers"])
    assert table["memory_bytes"] == elements * 8 * 8
    assert table["total_flops"] == sum(r["flops"] for r in table["layers"])


ARCHITECTURES = ["mlp", "lenet", "vgg", "googlenet", "resnet"]


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("dataset", [
    {"type": "digits"},
    {"type": "shapes", "size": 16, "count": 40, "channels": 3},
    {"type": "shapes", "size": 32, "count": 40, "channels": 1, "classes": 3},
])
def test_architectures_infer_equals_build(arch, dataset):
    if arch not in default_registry().names("architectures"):
        pytest.skip(f"architecture {arch} is not installed")
    spec = {"dataset": dataset, "model": {"architecture": arch}, "training": {"dtype": "float64"}}
    table = check_infer_matches_build(spec)
    assert table["num_classes"] == default_registry().get("datasets", dataset["type"])(
        {k: v for k, v in dataset.items() if k != "type"}).num_classes()
