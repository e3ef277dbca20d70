"""Synthetic images of circles, squares, triangles and crosses, drawn without loops over pixels.

Each sample gets a random centre, scale, shape colour and background colour;
masks come from comparing a coordinate grid against per-sample centres and
radii, so a whole class is drawn by a few broadcast comparisons.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from dlcore.component import Dataset, Shape
from dlcore.config import Config

#: Class k draws SHAPE_NAMES[k].
#: Most pixel values (count * channels * size^2) one data set may hold: 512 MiB as float32,
#: about 2.5 GiB at the peak of drawing it.
MAX_VALUES = 2**27
SHAPE_NAMES = ("circle", "square", "triangle", "cross")


def shape_masks(
    label: np.ndarray, dx: np.ndarray, dy: np.ndarray, radius: np.ndarray
) -> np.ndarray:
    """Boolean masks of each sample's shape.

    Inputs:
    - label: (N,) class of each sample, index into SHAPE_NAMES
    - dx, dy: (N, S, S) pixel offsets from each sample's centre (x right, y down)
    - radius: (N, 1, 1) half the shape's extent, in pixels

    Returns:
    - mask: (N, S, S) True inside the shape
    """
    mask = np.zeros(dx.shape, dtype=bool)
    for k in np.unique(label):
        sel = label == k
        x, y, r = dx[sel], dy[sel], radius[sel]
        if SHAPE_NAMES[k] == "circle":
            inside = x * x + y * y <= r * r
        elif SHAPE_NAMES[k] == "square":
            inside = np.maximum(np.abs(x), np.abs(y)) <= 0.85 * r  # about a circle's area
        elif SHAPE_NAMES[k] == "triangle":
            # apex at the top, base at the bottom, half-width growing from 0 to r
            inside = (np.abs(y) <= r) & (np.abs(x) <= (y + r) / 2)
        else:
            bar = r / 3
            inside = ((np.abs(x) <= bar) & (np.abs(y) <= r)) | (
                (np.abs(y) <= bar) & (np.abs(x) <= r)
            )
        mask[sel] = inside
    return mask


class ShapesConfig(Config):
    size: int = Field(32, ge=8, le=256, description="Image height and width, in pixels.")
    count: int = Field(
        1200, ge=4, le=200_000, description="Number of images (classes are balanced)."
    )
    classes: int = Field(
        4,
        ge=2,
        le=4,
        description="Number of classes: circle, square, triangle, cross, in that order.",
    )
    noise: float = Field(
        0.1, ge=0.0, le=2.0, description="Standard deviation of the Gaussian pixel noise."
    )
    channels: int = Field(3, ge=1, le=4, description="Colour channels (1 for greyscale).")
    seed: int = Field(
        0, ge=0, description="Seed of everything random: labels, positions, scales, colours, noise."
    )

    @model_validator(mode="after")
    def _enough_images(self):
        if self.count < self.classes:
            raise ValueError(f"count {self.count} must be at least classes {self.classes}")
        values = self.count * self.channels * self.size * self.size
        if values > MAX_VALUES:
            raise ValueError(
                f"count * channels * size^2 = {self.count} * {self.channels} * {self.size}^2 = {values:,} pixel values, "
                f"more than the {MAX_VALUES:,} allowed; use fewer or smaller images"
            )
        return self


class Shapes(Dataset):
    """Circles, squares, triangles and crosses at random positions, sizes and colours: (N, C, S, S)."""

    name = "shapes"
    summary = "Synthetic circles, squares, triangles and crosses (CNN-ready, no download)."
    Config = ShapesConfig
    examples = (
        {"size": 16, "count": 64},
        {"size": 12, "count": 30, "classes": 3, "channels": 1, "noise": 0.0, "seed": 5},
    )

    def sample_shape(self) -> Shape:
        return (self.config.channels, self.config.size, self.config.size)

    def num_classes(self) -> int:
        return self.config.classes

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns x: (count, channels, size, size) float32 about [0, 1] plus noise, y: (count,) int64."""
        cfg = self.config
        n, s = cfg.count, cfg.size
        rng = np.random.default_rng(cfg.seed)
        label = rng.permutation(np.arange(n) % cfg.classes)
        radius = rng.uniform(0.18, 0.38, size=(n, 1, 1)) * s
        centre_x = rng.uniform(radius, s - 1 - radius)
        centre_y = rng.uniform(radius, s - 1 - radius)
        grid = np.arange(s, dtype=np.float64)
        dx = grid[None, None, :] - centre_x
        dy = grid[None, :, None] - centre_y
        dx, dy = np.broadcast_arrays(dx, dy)
        mask = shape_masks(label, dx, dy, radius)[:, None, :, :]
        # Foreground and background come from disjoint brightness ranges, so shapes stay visible.
        background = rng.uniform(0.0, 0.4, size=(n, cfg.channels, 1, 1))
        foreground = rng.uniform(0.6, 1.0, size=(n, cfg.channels, 1, 1))
        x = np.where(mask, foreground, background)
        if cfg.noise > 0:
            x = x + rng.standard_normal(x.shape) * cfg.noise
        return x.astype(np.float32), label.astype(np.int64)
