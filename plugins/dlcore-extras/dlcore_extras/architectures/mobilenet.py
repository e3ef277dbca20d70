"""MobileNet (Howard et al. 2017): a stack of depthwise-separable blocks.

Stem: conv2d 3x3 (``filters`` * ``width`` channels, pad 1) + spatial_batchnorm + relu.
Block i (``blocks`` of them): depthwise_conv2d 3x3 + spatial_batchnorm + relu,
then a 1x1 conv2d + spatial_batchnorm + relu.  As in MobileNet v1, the first
block doubles the channels, and every odd block (1, 3, 5, ...) halves the
resolution with a stride-2 depthwise convolution and doubles the channels again.
Head: global_avgpool + affine to the class scores.

dlcore rejects convolutions whose output size is not whole (no silent flooring),
so a downsampling depthwise convolution is 3x3 with pad 1 on odd sides and 2x2
with pad 0 on even sides; when the sides have mixed parity or are smaller than 4
the block keeps stride 1 (and the channels still double).  ``width`` scales every
channel count, as MobileNet's width multiplier alpha.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from dlcore.component import Architecture
from dlcore.config import Config
from dlcore.errors import ConfigError


class MobileNetConfig(Config):
    width: float = Field(1.0, gt=0.0, le=4.0, description="width multiplier: scales every channel count")
    blocks: int = Field(4, ge=1, le=13, description="number of depthwise-separable blocks")
    filters: int = Field(16, ge=1, le=1024, description="channels of the stem convolution before the width multiplier")


def _downsample(h, w):
    """The depthwise kernel (size, pad) that halves an h x w image exactly, or None."""
    if h < 4 or w < 4:
        return None
    if h % 2 == 1 and w % 2 == 1:
        return 3, 1  # (S - 3 + 2)/2 + 1 = (S + 1)/2
    if h % 2 == 0 and w % 2 == 0:
        return 2, 0  # (S - 2)/2 + 1 = S/2
    return None


def _conv_bn_relu(entry):
    return [entry, {"type": "spatial_batchnorm"}, {"type": "relu"}]


class MobileNet(Architecture):
    """Depthwise-separable convolution blocks with a width multiplier, for images."""

    name: ClassVar[str] = "mobilenet"
    summary: ClassVar[str] = "MobileNet: depthwise 3x3 + pointwise 1x1 blocks with batchnorm and relu, width multiplier"
    Config: ClassVar[type[Config]] = MobileNetConfig
    examples: ClassVar[tuple[dict, ...]] = ({"blocks": 2, "filters": 4}, {"width": 0.5, "blocks": 3, "filters": 8})

    def channels(self, base):
        """A channel count scaled by the width multiplier (at least 1)."""
        return max(1, round(base * self.config.width))

    def layers(self, sample_shape, num_classes):
        """Spec entries for images of public shape (C, H, W) and ``num_classes`` scores.

        Inputs:
        - sample_shape: (C, H, W), public layout.
        - num_classes: number of output scores.

        Returns:
        - list of layer entries ``{"type": ..., ...}``.
        """
        if len(sample_shape) != 3:
            raise ConfigError(
                "architecture", f"mobilenet: needs image samples (C, H, W), got shape {tuple(sample_shape)}"
            )
        _, h, w = (int(s) for s in sample_shape)
        base = self.config.filters
        stack = _conv_bn_relu({"type": "conv2d", "filters": self.channels(base), "size": 3, "pad": 1})
        for i in range(self.config.blocks):
            kernel = _downsample(h, w) if i % 2 == 1 else None
            if kernel is None:
                depthwise = {"type": "depthwise_conv2d", "size": 3, "stride": 1, "pad": 1}
            else:
                size, pad = kernel
                depthwise = {"type": "depthwise_conv2d", "size": size, "stride": 2, "pad": pad}
                h, w = (h - size + 2 * pad) // 2 + 1, (w - size + 2 * pad) // 2 + 1
            if i == 0 or i % 2 == 1:
                base *= 2
            stack += _conv_bn_relu(depthwise)
            stack += _conv_bn_relu({"type": "conv2d", "filters": self.channels(base), "size": 1})
        stack += [{"type": "global_avgpool"}, {"type": "affine", "units": int(num_classes)}]
        return stack
