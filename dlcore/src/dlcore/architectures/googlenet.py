"""GoogLeNet (Szegedy et al., 2014), small: a stem, inception modules, global average pooling.

Each inception module has the four classic branches, concatenated along channels:

1. 1x1 convolution;
2. 1x1 bottleneck - relu - 3x3 convolution;
3. 1x1 bottleneck - relu - 5x5 convolution;
4. 3x3 max-pool of stride 1 - 1x1 convolution.

Our max-pool has no padding, so branch 4 pools to (H-2, W-2) and its 1x1
convolution takes ``pad 1`` to come back to (H, W): a true max-pool branch
whose one-pixel border holds the convolution's bias.  Each module is followed
by spatial batchnorm and relu; the head is global average pooling and one
affine layer (no large fully connected layer).
"""

from __future__ import annotations

from pydantic import Field

from dlcore.architectures import image_shape
from dlcore.component import Architecture, Shape
from dlcore.config import Config


class GoogLeNetConfig(Config):
    modules: int = Field(2, ge=1, le=12, description="Number of inception modules.")
    width: int = Field(
        8,
        ge=2,
        le=1024,
        description="Channels of the 1x1 and 3x3 branches; bottlenecks and the other branches use half.",
    )
    stem_filters: int = Field(16, ge=1, le=1024, description="Filters of the 3x3 stem convolution.")
    batchnorm: bool = Field(
        True, description="Spatial batch normalization after the stem and after each module."
    )
    downsample_at: int = Field(
        8,
        ge=0,
        le=4096,
        description="Max-pool 2x2 after the stem and halfway through the modules while the side is at least this (0: never).",
    )


def inception_module(width: int, input_side: int) -> dict:
    """One four-branch module keeping the height and width (at least 3 for the pool branch)."""
    half, quarter = max(width // 2, 1), max(width // 4, 1)
    pool_branch = (
        [
            {"type": "maxpool", "size": 3, "stride": 1},
            {"type": "conv2d", "filters": half, "size": 1, "pad": 1},
        ]
        if input_side >= 3
        else [{"type": "conv2d", "filters": half, "size": 1}]  # too small to pool 3x3: project only
    )
    return {
        "type": "inception",
        "branches": [
            [{"type": "conv2d", "filters": width, "size": 1}],
            [
                {"type": "conv2d", "filters": half, "size": 1},
                {"type": "relu"},
                {"type": "conv2d", "filters": width, "size": 3, "pad": 1},
            ],
            [
                {"type": "conv2d", "filters": quarter, "size": 1},
                {"type": "relu"},
                {"type": "conv2d", "filters": half, "size": 5, "pad": 2},
            ],
            pool_branch,
        ],
    }


class GoogLeNet(Architecture):
    """conv3x3 stem - (pool) - inception modules (a pool halfway) - global_avgpool - affine."""

    name = "googlenet"
    summary = "GoogLeNet: inception modules (1x1, 3x3, 5x5 with bottlenecks, pool) and global average pooling."
    Config = GoogLeNetConfig
    examples = (
        {},
        {"modules": 1, "width": 4, "stem_filters": 4, "batchnorm": False, "downsample_at": 0},
    )

    def layers(self, sample_shape: Shape, num_classes: int) -> list[dict]:
        cfg = self.config
        _, h, w = image_shape(self.name, sample_shape)

        def pool_if_large() -> list[dict]:
            nonlocal h, w
            if (
                cfg.downsample_at
                and min(h, w) >= max(cfg.downsample_at, 4)
                and h % 2 == 0
                and w % 2 == 0
            ):
                h, w = h // 2, w // 2
                return [{"type": "maxpool", "size": 2}]
            return []

        def norm_relu() -> list[dict]:
            return ([{"type": "spatial_batchnorm"}] if cfg.batchnorm else []) + [{"type": "relu"}]

        out: list[dict] = [
            {"type": "conv2d", "filters": cfg.stem_filters, "size": 3, "pad": 1}
        ] + norm_relu()
        out += pool_if_large()
        for m in range(cfg.modules):
            out.append(inception_module(cfg.width, min(h, w)))
            out += norm_relu()
            if m + 1 == cfg.modules // 2:
                out += pool_if_large()
        out += [{"type": "global_avgpool"}, {"type": "affine", "units": int(num_classes)}]
        return out
