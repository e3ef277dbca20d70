"""Xavier initialization in the course notes' form: ``randn(shape) / sqrt(fan_in)``.

Glorot and Bengio (2010), simplified as the CS231n notes give it: variance
1 / fan_in keeps the variance of a linear unit's output equal to its inputs'
variance, which suits tanh and other activations symmetric about zero.

This is NOT what PyTorch's ``xavier_normal_`` / ``xavier_uniform_`` or Keras'
``Glorot*`` draw: those average both fans, variance 2 / (fan_in + fan_out), and are
dlcore's ``glorot_normal`` and ``glorot_uniform`` (:mod:`dlcore.initializers.glorot`).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from dlcore.component import Initializer, Shape
from dlcore.config import Config, EmptyConfig


def xavier_init(
    shape: Shape, fan_in: int, rng: np.random.Generator, dtype=np.float32
) -> np.ndarray:
    """Draw a Xavier-scaled Gaussian weight array.

    Inputs:
    - shape: shape of the weight array, e.g. (D, M) or (KH, KW, C, F).
    - fan_in: number of inputs feeding one output unit (D, or KH*KW*C).
    - rng: the random generator to draw from.
    - dtype: floating type of the result.

    Returns:
    - w: array of ``shape`` with entries ~ N(0, 1 / fan_in).
    """
    # Draw in float64 so float32 and float64 models built from one seed agree.
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)


class Xavier(Initializer):
    """Gaussian weights with variance 1 / fan_in, the notes' Xavier (not PyTorch's: see glorot_normal)."""

    name: ClassVar[str] = "xavier"
    summary: ClassVar[str] = (
        "Gaussian weights with variance 1/fan_in, the course notes' Xavier (randn/sqrt(fan_in)); "
        "glorot_normal is PyTorch's xavier_normal_."
    )
    Config: ClassVar[type[Config]] = EmptyConfig
    examples: ClassVar[tuple[dict, ...]] = ({},)

    def __call__(
        self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator, dtype=np.float32
    ) -> np.ndarray:
        return xavier_init(shape, fan_in, rng, dtype)
