"""What an augmentation is: a small configured transform of a public (N, C, H, W) batch."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from dlcore.component import Component, Shape
from dlcore.errors import ConfigError


class Augmentation(Component):
    """A random transform of training images: ``apply(x, rng) -> new array``, x never modified.

    Works on the public layout (N, C, H, W), draws only from ``rng``.
    """

    kind: ClassVar[str] = "augmentation"

    def check_shape(self, sample_shape: Shape) -> None:
        """ConfigError unless ``sample_shape`` (public) is an image (C, H, W).

        The error names no parameter (the data, not the augmentation's settings, is wrong):
        the spec places it on the augmentation's entry, ``dataset.augment[i]``.
        """
        if len(sample_shape) != 3:
            raise ConfigError(
                "",
                f"{self.name}: needs images (C, H, W), the data set gives samples of shape {tuple(sample_shape)}",
            )

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError
