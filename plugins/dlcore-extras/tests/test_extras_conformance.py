"""The conformance kit over every dlcore-extras component: one test per (component, check)."""

from __future__ import annotations

from dlcore.testing import parametrize_with_checks
from dlcore_extras.activations.gelu import GELU
from dlcore_extras.activations.mish import Mish
from dlcore_extras.activations.silu import SiLU
from dlcore_extras.architectures.mobilenet import MobileNet
from dlcore_extras.layers.depthwise_conv2d import DepthwiseConv2D
from dlcore_extras.layers.groupnorm import GroupNorm
from dlcore_extras.layers.layernorm import LayerNorm


@parametrize_with_checks([GELU, SiLU, Mish, LayerNorm, GroupNorm, DepthwiseConv2D, MobileNet])
def test_extras_component_conforms(component, check):
    check(component)
