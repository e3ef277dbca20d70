"""Random crops of zero-padded images (the CIFAR recipe: pad 4, crop back to the size)."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from dlcore.augmentation.base import Augmentation
from dlcore.config import Config


class CropConfig(Config):
    pad: int = Field(
        4,
        ge=1,
        le=64,
        description="Zero padding on each side; the crop shifts by up to pad pixels.",
    )


class Crop(Augmentation):
    """Pad each image with ``pad`` zeros per side, then cut a random window of the original size."""

    name = "crop"
    summary = "Random crop with zero padding."
    Config = CropConfig

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """x: (N, C, H, W) -> (N, C, H, W), a new array; one offset pair per image."""
        n, c, h, w = x.shape
        pad = self.config.pad
        padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        top = rng.integers(0, 2 * pad + 1, size=n)
        left = rng.integers(0, 2 * pad + 1, size=n)
        rows = (top[:, None] + np.arange(h))[:, None, :, None]  # (N, 1, H, 1)
        cols = (left[:, None] + np.arange(w))[:, None, None, :]  # (N, 1, 1, W)
        return padded[
            np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None], rows, cols
        ]
