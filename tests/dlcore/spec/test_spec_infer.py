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


# --------------------------------------------------------------------------- structure at default scale, from infer(spec)

def kernel_side(row, in_channels):
    """A conv2d row's kernel side F, from its params F*F*C*K + K and output channels K."""
    k = row["output_shape"][0]
    area = (row["params"] - k) / (in_channels * k)
    side = round(area**0.5)
    assert side * side * in_channels * k + k == row["params"], row
    return side


def walk(rows, in_shape):
    """(row, its input shape) for each row of a stack."""
    out = []
    for row in rows:
        out.append((row, in_shape))
        in_shape = row["output_shape"]
    return out


def default_table(arch, size=32):
    return infer({"dataset": {"type": "shapes", "size": size, "count": 40}, "model": {"architecture": arch}})


@pytest.mark.parametrize("size", [16, 32])
def test_vgg_default_has_two_stacks_of_two_3x3_convolutions(size):
    table = default_table("vgg", size)
    stacks, run = [], 0
    for row, in_shape in walk(table["layers"], table["input_shape"]):
        if row["type"] == "conv2d":
            assert kernel_side(row, in_shape[0]) == 3 and row["output_shape"][1:] == in_shape[1:]
            run += 1
        elif row["type"] == "maxpool":
            stacks.append(run)
            run = 0
    assert len(stacks) >= 2 and all(n >= 2 for n in stacks), stacks


@pytest.mark.parametrize("size", [16, 32])
def test_googlenet_default_has_two_four_branch_inception_modules(size):
    table = default_table("googlenet", size)
    modules = [(row, in_shape) for row, in_shape in walk(table["layers"], table["input_shape"]) if row["type"] == "inception"]
    assert len(modules) >= 2
    for row, in_shape in modules:
        c = in_shape[0]
        signature = []
        for branch in row["branches"]:
            sig = []
            for inner, inner_in in walk(branch, in_shape):
                sig.append(f"conv{kernel_side(inner, inner_in[0])}" if inner["type"] == "conv2d" else inner["type"])
            signature.append(sig)
        assert signature == [["conv1"], ["conv1", "relu", "conv3"], ["conv1", "relu", "conv5"], ["maxpool", "conv1"]]
        assert all(b[0]["output_shape"][0] < c for b in row["branches"][1:3])  # 1x1 bottlenecks reduce the depth
        assert row["output_shape"][0] == sum(b[-1]["output_shape"][0] for b in row["branches"])  # depths concatenated
        assert row["params"] == sum(r["params"] for b in row["branches"] for r in b)
    types = [row["type"] for row in table["layers"]]
    assert types[-2:] == ["global_avgpool", "affine"] and types.count("affine") == 1  # no large FC layer


@pytest.mark.parametrize("size", [16, 32])
def test_resnet_default_has_two_stages_with_identity_and_projection_shortcuts(size):
    table = default_table("resnet", size)
    blocks = [(row, in_shape) for row, in_shape in walk(table["layers"], table["input_shape"]) if row["type"] == "residual"]
    projections = [(r, s) for r, s in blocks if r["shortcut"] == "projection"]
    identities = [(r, s) for r, s in blocks if r["shortcut"] == "identity"]
    assert len(projections) >= 2 and identities
    assert len({r["output_shape"][0] for r, _ in projections}) >= 2  # stages change the width
    for row, in_shape in identities:
        assert row["output_shape"] == in_shape and row["params"] == sum(r["params"] for r in row["layers"])
    for row, in_shape in projections:
        assert row["output_shape"] != in_shape
        c, k = in_shape[0], row["output_shape"][0]
        assert row["params"] == sum(r["params"] for r in row["layers"]) + c * k + k  # plus the 1x1 projection


@pytest.mark.parametrize("arch", ["googlenet", "resnet"])
def test_nested_rows_equal_the_built_blocks(arch):
    spec = {"dataset": {"type": "shapes", "size": 16, "count": 40}, "model": {"architecture": arch},
            "training": {"dtype": "float64"}}
    table = infer(spec)
    model = build(spec)
    from dlcore.layout import to_internal

    h = to_internal(np.random.default_rng(0).normal(size=(2, *table["input_shape"])))
    checked = 0
    for row, layer in zip(table["layers"], model.net.children, strict=True):
        stacks = [(row["layers"], layer.body)] if "layers" in row else []
        stacks += list(zip(row.get("branches", []), getattr(layer, "branches", []), strict=True))
        for rows, seq in stacks:
            inner = h
            for inner_row, child in zip(rows, seq.children, strict=True):
                inner = child.forward(inner, training=False)
                assert inner_row["output_shape"] == list(to_public(inner).shape[1:])
                assert inner_row["params"] == sum(int(a.size) for a in child.params.values())
                checked += 1
        h = layer.forward(h, training=False)
    assert checked > 0
