"""The built-in architectures: named layer stacks that adapt to the data's shape and class count.

Each module holds one ``Architecture`` whose ``layers(sample_shape, num_classes)``
returns spec entries; the convolutional ones take images only (:func:`image_shape`).
"""

from __future__ import annotations

from dlcore.component import Shape
from dlcore.errors import ConfigError


def image_shape(name: str, sample_shape: Shape) -> tuple[int, int, int]:
    """(C, H, W) of an image sample; ConfigError on ``architecture`` for anything else.

    Inputs:
    - name: the architecture, named in the message
    - sample_shape: the data set's public per-sample shape
    """
    if len(sample_shape) != 3:
        raise ConfigError(
            "architecture",
            f"{name}: needs images (C, H, W), the data set gives samples of shape {tuple(sample_shape)}",
        )
    c, h, w = (int(s) for s in sample_shape)
    return c, h, w
