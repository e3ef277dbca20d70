"""VGG (Simonyan and Zisserman, 2014): stacks of 3x3 convolutions, each stack ending in a 2x2 max-pool."""

from __future__ import annotations

from pydantic import Field

from dlcore.architectures import image_shape
from dlcore.component import Architecture, Shape
from dlcore.config import Config


class VGGConfig(Config):
    stacks: int = Field(
        2, ge=1, le=8, description="Number of conv stacks, each followed by a 2x2 max-pool."
    )
    convs_per_stack: int = Field(2, ge=1, le=8, description="3x3 convolutions per stack.")
    width: int = Field(
        8, ge=1, le=1024, description="Filters in the first stack; each stack doubles it."
    )
    batchnorm: bool = Field(True, description="Spatial batch normalization after each convolution.")
    hidden: int = Field(
        0,
        ge=0,
        le=65536,
        description="Units of a fully connected hidden layer before the scores (0: none).",
    )
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout before the hidden and score layers (0: none)."
    )


class VGG(Architecture):
    """[[conv3x3 - (bn) - relu] x convs_per_stack - maxpool 2] x stacks - (affine - relu) - affine.

    The pool is left out of a stack once the height or width is odd or 1, so
    small inputs still build (the stacks then keep their size).
    """

    name = "vgg"
    summary = (
        "VGG: stacks of 3x3 convolutions with batchnorm and relu, each followed by a 2x2 max-pool."
    )
    Config = VGGConfig
    examples = (
        {},
        {
            "stacks": 1,
            "convs_per_stack": 1,
            "width": 4,
            "batchnorm": False,
            "hidden": 8,
            "dropout": 0.5,
        },
    )

    def layers(self, sample_shape: Shape, num_classes: int) -> list[dict]:
        cfg = self.config
        _, h, w = image_shape(self.name, sample_shape)
        out: list[dict] = []
        for stack in range(cfg.stacks):
            for _ in range(cfg.convs_per_stack):
                out.append({"type": "conv2d", "filters": cfg.width * 2**stack, "size": 3, "pad": 1})
                if cfg.batchnorm:
                    out.append({"type": "spatial_batchnorm"})
                out.append({"type": "relu"})
            if h % 2 == 0 and w % 2 == 0:
                out.append({"type": "maxpool", "size": 2})
                h, w = h // 2, w // 2
        if cfg.hidden:
            if cfg.dropout > 0:
                out.append({"type": "dropout", "p": cfg.dropout})
            out += [{"type": "affine", "units": cfg.hidden}, {"type": "relu"}]
        if cfg.dropout > 0:
            out.append({"type": "dropout", "p": cfg.dropout})
        out.append({"type": "affine", "units": int(num_classes)})
        return out
