"""He initialization: Gaussian weights scaled for ReLU networks.

He et al. (2015): with ReLU half of the units are zero, so to keep the
variance of activations constant from layer to layer the weights need
variance 2 / fan_in, i.e. ``randn(shape) / sqrt(fan_in / 2)``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from dlcore.component import Initializer, Shape
from dlcore.config import Config, EmptyConfig


def he_init(shape: Shape, fan_in: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """Draw a He-scaled Gaussian weight array.

    Inputs:
    - shape: shape of the weight array, e.g. (D, M) or (KH, KW, C, F).
    - fan_in: number of inputs feeding one output unit (D, or KH*KW*C).
    - rng: the random generator to draw from.
    - dtype: floating type of the result.

    Returns:
    - w: array of ``shape`` with entries ~ N(0, 2 / fan_in).
    """
    # Draw in float64 so float32 and float64 models built from one seed agree.
    return (rng.standard_normal(shape) / np.sqrt(fan_in / 2.0)).astype(dtype)


class He(Initializer):
    """Gaussian weights with variance 2 / fan_in, the default for ReLU networks."""

    name: ClassVar[str] = "he"
    summary: ClassVar[str] = (
        "Gaussian weights with variance 2/fan_in (He et al.), suited to ReLU networks."
    )
    Config: ClassVar[type[Config]] = EmptyConfig
    examples: ClassVar[tuple[dict, ...]] = ({},)

    def __call__(
        self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator, dtype=np.float32
    ) -> np.ndarray:
        return he_init(shape, fan_in, rng, dtype)
