"""Architectures: structure at default scale, and shape inference equal to the built model."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.layers.inception import Inception
from dlcore.layers.residual import Residual
from dlcore.layers.sequential import Sequential
from dlcore.layout import shape_to_internal
from dlcore.registry import default_registry

ARCHITECTURES = ["mlp", "lenet", "vgg", "googlenet", "resnet"]
SHAPES = [(1, 8, 8), (3, 16, 16), (3, 32, 32)]


def architecture(name, params=None):
    return default_registry().get("architectures", name)(params or {})


def stack(name, sample_shape, num_classes=10, params=None):
    entries = architecture(name, params).layers(sample_shape, num_classes)
    return Sequential({"layers": entries}, registry=default_registry(), field="model.layers")


def built_stack(name, sample_shape, num_classes=10, params=None):
    seq = stack(name, sample_shape, num_classes, params)
    seq.build(shape_to_internal(sample_shape), np.random.default_rng(0), np.float32)
    return seq


def conv_params(layer):
    return layer.config.size, layer.config.stride, layer.config.pad


@pytest.mark.parametrize("sample_shape", SHAPES)
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_inferred_rows_equal_the_built_model(name, sample_shape):
    for params in type(architecture(name)).examples:
        seq = built_stack(name, sample_shape, num_classes=7, params=params)
        rows = seq.infer_rows(shape_to_internal(sample_shape))
        x = (
            np.random.default_rng(1)
            .standard_normal((2,) + shape_to_internal(sample_shape))
            .astype(np.float32)
        )
        for row, child in zip(rows, seq.children, strict=True):
            x = child.forward(x, training=True, rng=np.random.default_rng(2))
            assert x.shape[1:] == row["out_shape"], (row, params)
            assert row["params"] == sum(a.size for a in child.params.values()), (row, params)
        assert rows[-1]["out_shape"] == (7,) and rows[-1]["type"] == "affine"
        assert seq.infer(shape_to_internal(sample_shape)).params == sum(
            a.size for a in seq.params.values()
        )


@pytest.mark.parametrize("name", ["lenet", "vgg", "googlenet", "resnet"])
def test_convolutional_architectures_reject_vectors(name):
    with pytest.raises(ConfigError) as exc:
        architecture(name).layers((2,), 3)
    assert "(2,)" in exc.value.message


def test_mlp_hidden_sizes_batchnorm_and_dropout():
    entries = architecture(
        "mlp", {"hidden": [32, 16], "activation": "tanh", "batchnorm": True, "dropout": 0.3}
    ).layers((1, 8, 8), 10)
    assert [e["type"] for e in entries] == ["affine", "batchnorm", "tanh", "dropout"] * 2 + [
        "affine"
    ]
    assert [e["units"] for e in entries if e["type"] == "affine"] == [32, 16, 10]
    assert all(e["p"] == 0.3 for e in entries if e["type"] == "dropout")
    entries = architecture("mlp", {"depth": 3, "width": 20}).layers((2,), 3)
    assert [e.get("units") for e in entries if e["type"] == "affine"] == [20, 20, 20, 3]
    seq = built_stack("mlp", (2,), 3)
    assert seq.forward(np.zeros((4, 2), np.float32)).shape == (4, 3)


def test_lenet_is_conv_relu_pool_twice_then_fully_connected():
    types = [c.name for c in stack("lenet", (1, 8, 8)).children]
    assert types[:6] == ["conv2d", "relu", "maxpool"] * 2
    assert types[-1] == "affine" and "affine" in types[6:-1]


@pytest.mark.parametrize("sample_shape", [(3, 32, 32), (1, 8, 8)])
def test_vgg_has_stacks_of_3x3_convolutions_ending_in_maxpool(sample_shape):
    children = stack("vgg", sample_shape).children
    stacks, run = [], 0
    for child in children:
        if child.name == "conv2d":
            assert conv_params(child) == (3, 1, 1)
            run += 1
        elif child.name == "maxpool":
            stacks.append(run)
            run = 0
    assert len(stacks) >= 2 and all(n >= 2 for n in stacks), stacks
    assert any(c.name == "spatial_batchnorm" for c in children)


def branch_signature(branch: Sequential) -> list[tuple]:
    out = []
    for layer in branch.children:
        if layer.name == "conv2d":
            out.append(("conv", layer.config.size))
        elif layer.name == "maxpool":
            out.append(("maxpool", layer.config.size, layer.config.stride or layer.config.size))
    return out


@pytest.mark.parametrize("sample_shape", SHAPES)
def test_googlenet_has_four_branch_inception_modules_and_no_big_fc(sample_shape):
    seq = built_stack("googlenet", sample_shape)
    modules = [c for c in seq.children if isinstance(c, Inception)]
    assert len(modules) >= 2
    for module in modules:
        assert [branch_signature(b) for b in module.branches] == [
            [("conv", 1)],
            [("conv", 1), ("conv", 3)],
            [("conv", 1), ("conv", 5)],
            [("maxpool", 3, 1), ("conv", 1)],
        ]
        # bottlenecks: the 1x1 before a 3x3 or 5x5 has fewer filters than the module's input channels
        in_channels = module.in_shape[-1]
        assert all(b.children[0].config.filters < in_channels for b in module.branches[1:3])
    names = [c.name for c in seq.children]
    assert names[-2:] == ["global_avgpool", "affine"] and names.count("affine") == 1


@pytest.mark.parametrize("sample_shape", SHAPES)
def test_resnet_stages_downsample_with_projections_then_identity(sample_shape):
    seq = built_stack("resnet", sample_shape, params={"stochastic_depth": 0.1})
    blocks = [c for c in seq.children if isinstance(c, Residual)]
    projections = [b for b in blocks if b.shortcut is not None]
    identities = [b for b in blocks if b.shortcut is None]
    assert len(projections) >= 2 and len(identities) >= 2  # one projection per stage: >= 2 stages
    assert all(b.config.shortcut == "projection" for b in projections)
    assert all(b.drop == 0.1 and b.stochastic for b in blocks)
    for block in projections:
        out_shape = block.infer(block.in_shape).out_shape
        assert out_shape[2] != block.in_shape[2] or out_shape[:2] != block.in_shape[:2]
    if sample_shape[1] >= 16:  # large enough that every stage halves the size
        assert all(b.shortcut.config.stride == (2, 2) for b in projections)
    x = (
        np.random.default_rng(0)
        .standard_normal((2,) + shape_to_internal(sample_shape))
        .astype(np.float32)
    )
    evaluation = seq.forward(x, training=False)
    np.testing.assert_array_equal(evaluation, seq.forward(x, training=False))


def test_architectures_adapt_to_class_count():
    for name in ARCHITECTURES:
        assert architecture(name).layers((3, 16, 16), 4)[-1] == {"type": "affine", "units": 4}
