"""Small random initialization: ``std * randn(shape)``, std 0.01 by default.

Fine for shallow networks; in deep ones the activations shrink towards zero
layer after layer (catalogue section 8), which is why xavier and he exist.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from dlcore.component import Initializer, Shape
from dlcore.config import Config


def normal_init(shape: Shape, std: float, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """Draw a Gaussian weight array with a fixed standard deviation.

    Inputs:
    - shape: shape of the weight array.
    - std: standard deviation of every entry.
    - rng: the random generator to draw from.
    - dtype: floating type of the result.

    Returns:
    - w: array of ``shape`` with entries ~ N(0, std^2).
    """
    # Draw in float64 so float32 and float64 models built from one seed agree.
    return (std * rng.standard_normal(shape)).astype(dtype)


class NormalConfig(Config):
    std: float = Field(0.01, gt=0, description="Standard deviation of the weights.")


class Normal(Initializer):
    """Gaussian weights with a fixed standard deviation (``0.01 * randn`` by default)."""

    name: ClassVar[str] = "normal"
    summary: ClassVar[str] = (
        "Gaussian weights with a fixed standard deviation (default 0.01 * randn)."
    )
    Config: ClassVar[type[Config]] = NormalConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"std": 0.001})

    def __call__(
        self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator, dtype=np.float32
    ) -> np.ndarray:
        return normal_init(shape, self.config.std, rng, dtype)
