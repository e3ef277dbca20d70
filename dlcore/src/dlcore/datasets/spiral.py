"""The classic 2-D spiral classification set of CS231n (not linearly separable)."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from dlcore.component import Dataset, Shape
from dlcore.config import Config


class SpiralConfig(Config):
    points_per_class: int = Field(100, ge=1, le=100_000, description="Points on each arm.")
    classes: int = Field(3, ge=2, le=50, description="Number of arms (classes).")
    noise: float = Field(
        0.2, ge=0.0, le=10.0, description="Standard deviation of the angle noise, in radians."
    )
    seed: int = Field(0, ge=0, description="Seed of the noise.")


class Spiral(Dataset):
    """Class k is the arm r = t, theta = 4k + 4t + noise for t in [0, 1] (CS231n's construction)."""

    name = "spiral"
    summary = "CS231n's 2-D spiral: one arm per class, from a seed."
    Config = SpiralConfig
    examples = ({}, {"points_per_class": 20, "classes": 4, "noise": 0.1, "seed": 3})

    def sample_shape(self) -> Shape:
        return (2,)

    def num_classes(self) -> int:
        return self.config.classes

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns x: (classes * points_per_class, 2) float64, y: int64, class-major order."""
        n, k = self.config.points_per_class, self.config.classes
        rng = np.random.default_rng(self.config.seed)
        radius = np.tile(np.linspace(0.0, 1.0, n), k)
        arm = np.repeat(np.arange(k), n)
        theta = (
            4.0 * arm
            + np.tile(np.linspace(0.0, 4.0, n), k)
            + rng.standard_normal(n * k) * self.config.noise
        )
        x = np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1)
        return x, arm.astype(np.int64)
