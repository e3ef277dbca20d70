"""Random horizontal flips."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from dlcore.augmentation.base import Augmentation
from dlcore.config import Config


class FlipConfig(Config):
    p: float = Field(
        0.5, ge=0.0, le=1.0, description="Probability of flipping each image left-right."
    )


class Flip(Augmentation):
    """Mirror each image left-right with probability p."""

    name = "flip"
    summary = "Random horizontal flip."
    Config = FlipConfig

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """x: (N, C, H, W) -> (N, C, H, W), a new array; one draw per image."""
        flipped = rng.random(x.shape[0]) < self.config.p
        out = x.copy()
        out[flipped] = x[flipped, :, :, ::-1]
        return out
