"""mobilenet: the stack it expands to, its shapes on several inputs, the width multiplier."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.layers.sequential import Sequential
from dlcore.layout import shape_to_internal
from dlcore_extras.architectures.mobilenet import MobileNet


def stack(sample_shape, num_classes=10, **cfg):
    return MobileNet(**cfg).layers(sample_shape, num_classes)


@pytest.mark.parametrize("sample_shape", [(1, 8, 8), (3, 9, 9), (3, 7, 10), (2, 16, 16)])
@pytest.mark.parametrize("cfg", [{}, {"width": 0.5, "blocks": 3}, {"blocks": 1, "filters": 4}])
def test_builds_and_runs_with_the_inferred_shape(sample_shape, cfg):
    net = Sequential({"layers": stack(sample_shape, num_classes=5, **cfg)})
    in_shape = shape_to_internal(sample_shape)
    info = net.infer(in_shape)
    assert info.out_shape == (5,)
    net.build(in_shape, np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((2, *in_shape))
    out = net.forward(x, training=True, rng=np.random.default_rng(2))
    assert out.shape == (2, 5) and np.all(np.isfinite(out))
    assert sum(p.size for p in net.params.values()) == info.params


def test_blocks_are_depthwise_separable():
    entries = stack((3, 8, 8), blocks=2, filters=4)
    types = [e["type"] for e in entries]
    block = ["depthwise_conv2d", "spatial_batchnorm", "relu", "conv2d", "spatial_batchnorm", "relu"]
    assert types == ["conv2d", "spatial_batchnorm", "relu"] + block * 2 + ["global_avgpool", "affine"]
    depthwise = [e for e in entries if e["type"] == "depthwise_conv2d"]
    pointwise = [e for e in entries if e["type"] == "conv2d"][1:]
    assert [e["stride"] for e in depthwise] == [1, 2]  # the odd block halves 8x8 to 4x4
    assert all(e["size"] == 1 for e in pointwise)
    # Channels double at block 0 and at every downsampling block, as MobileNet v1.
    assert [e["filters"] for e in pointwise] == [8, 16]
    assert entries[-1] == {"type": "affine", "units": 10}


def test_width_multiplier_scales_every_channel_count():
    full = stack((3, 8, 8), blocks=3, filters=16)
    half = stack((3, 8, 8), blocks=3, filters=16, width=0.5)
    channels = lambda entries: [e["filters"] for e in entries if e["type"] == "conv2d"]
    assert channels(half) == [c // 2 for c in channels(full)]


def test_vector_samples_are_a_config_error():
    with pytest.raises(ConfigError, match="mobilenet: needs image samples"):
        stack((64,))


@pytest.mark.parametrize("params,field", [({"width": 0}, "width"), ({"blocks": 0}, "blocks"), ({"blocks": 14}, "blocks")])
def test_bad_parameters_raise_config_error_naming_the_field(params, field):
    with pytest.raises(ConfigError) as info:
        MobileNet(**params)
    assert info.value.field == field and "mobilenet" in info.value.message
