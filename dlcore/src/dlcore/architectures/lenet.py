"""LeNet (LeCun et al., 1998) in its modern form: conv-relu-pool blocks, then fully connected layers."""

from __future__ import annotations

from pydantic import Field

from dlcore.architectures import image_shape
from dlcore.component import Architecture, Shape
from dlcore.config import Config
from dlcore.errors import ConfigError


class LeNetConfig(Config):
    depth: int = Field(2, ge=1, le=8, description="Number of conv-relu-pool blocks.")
    width: int = Field(
        8, ge=1, le=1024, description="Filters of the first convolution; each block doubles it."
    )
    size: int = Field(
        5,
        ge=1,
        le=11,
        description="Kernel side of every convolution (odd: padded to keep the size).",
    )
    hidden: int = Field(
        64, ge=0, le=65536, description="Units of the fully connected hidden layer (0: none)."
    )


class LeNet(Architecture):
    """[conv(size, "same") - relu - maxpool 2] x depth - affine(hidden) - relu - affine(classes).

    A 2x2 pool is added only while the height and width are even and at least
    2, so the network adapts to any input size (8x8 digits: 8 -> 4 -> 2).
    """

    name = "lenet"
    summary = "LeNet: conv-relu-pool blocks, then a hidden fully connected layer and class scores."
    Config = LeNetConfig
    examples = ({}, {"depth": 1, "width": 4, "size": 3, "hidden": 0})

    def layers(self, sample_shape: Shape, num_classes: int) -> list[dict]:
        _, h, w = image_shape(self.name, sample_shape)
        cfg = self.config
        if cfg.size % 2 == 0:
            raise ConfigError(
                "size",
                f"lenet: size must be odd so the convolution keeps the image size, got {cfg.size}",
            )
        out: list[dict] = []
        for block in range(cfg.depth):
            out.append(
                {"type": "conv2d", "filters": cfg.width * 2**block, "size": cfg.size, "pad": "same"}
            )
            out.append({"type": "relu"})
            if h % 2 == 0 and w % 2 == 0:
                out.append({"type": "maxpool", "size": 2})
                h, w = h // 2, w // 2
        if cfg.hidden:
            out += [{"type": "affine", "units": cfg.hidden}, {"type": "relu"}]
        out.append({"type": "affine", "units": int(num_classes)})
        return out
