"""ResNet (He et al., 2015), small: a stem and stages of residual blocks, global average pooling.

Every stage starts with a block that downsamples (when the height and width are
even: a 4x4 convolution of stride 2, pad 1, halves them exactly) and changes the
channels, so its shortcut is a projection; the other blocks of the stage keep
the shape and use identity shortcuts.  Optional stochastic depth drops each
block's branch with probability p in training and scales it by 1 - p in
evaluation.
"""

from __future__ import annotations

from pydantic import Field

from dlcore.architectures import image_shape
from dlcore.component import Architecture, Shape
from dlcore.config import Config


class ResNetConfig(Config):
    stages: int = Field(
        2,
        ge=1,
        le=6,
        description="Number of stages; each one's first block downsamples with a projection shortcut.",
    )
    blocks_per_stage: int = Field(
        2,
        ge=1,
        le=16,
        description="Residual blocks per stage (the first projects, the others are identity).",
    )
    width: int = Field(
        8, ge=1, le=1024, description="Channels of the stem; stage s has width * 2**s."
    )
    stochastic_depth: float = Field(
        0.0, ge=0.0, lt=1.0, description="Drop probability of each residual branch in training."
    )
    batchnorm: bool = Field(True, description="Spatial batch normalization after each convolution.")


class ResNet(Architecture):
    """conv3x3 stem - bn - relu - [residual blocks] x stages - global_avgpool - affine."""

    name = "resnet"
    summary = (
        "ResNet: residual stages with projection and identity shortcuts, optional stochastic depth."
    )
    Config = ResNetConfig
    examples = (
        {},
        {
            "stages": 1,
            "blocks_per_stage": 1,
            "width": 4,
            "batchnorm": False,
            "stochastic_depth": 0.2,
        },
    )

    def _conv_bn(self, filters: int, size: int = 3, stride: int = 1, pad: int = 1) -> list[dict]:
        conv = {"type": "conv2d", "filters": filters, "size": size, "pad": pad}
        if stride != 1:
            conv["stride"] = stride
        return [conv] + ([{"type": "spatial_batchnorm"}] if self.config.batchnorm else [])

    def layers(self, sample_shape: Shape, num_classes: int) -> list[dict]:
        cfg = self.config
        _, h, w = image_shape(self.name, sample_shape)
        out = self._conv_bn(cfg.width) + [{"type": "relu"}]
        for stage in range(cfg.stages):
            filters = cfg.width * 2**stage
            for block in range(cfg.blocks_per_stage):
                first = block == 0
                if first and h % 2 == 0 and w % 2 == 0 and min(h, w) >= 4:
                    entry = self._conv_bn(
                        filters, size=4, stride=2, pad=1
                    )  # (H - 4 + 2)/2 + 1 = H/2
                    h, w = h // 2, w // 2
                else:
                    entry = self._conv_bn(filters)
                body = entry + [{"type": "relu"}] + self._conv_bn(filters)
                block_entry = {
                    "type": "residual",
                    "layers": body,
                    "shortcut": "projection" if first else "identity",
                }
                if cfg.stochastic_depth > 0:
                    block_entry["stochastic_depth"] = cfg.stochastic_depth
                out.append(block_entry)
        out += [{"type": "global_avgpool"}, {"type": "affine", "units": int(num_classes)}]
        return out
