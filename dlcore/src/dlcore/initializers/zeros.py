"""All-zero initialization, kept because the notes discuss it: it never breaks symmetry.

Every neuron of a layer initialized to zeros computes the same output and
receives the same gradient, so they stay identical for the whole training.
The initializer still works (biases start at zero anyway) but warns.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np

from dlcore.component import Initializer, Shape
from dlcore.config import Config, EmptyConfig

ZERO_INIT_WARNING = "all-zero initialization: every neuron computes the same thing"


def zeros_init(shape: Shape, dtype=np.float32) -> np.ndarray:
    """An all-zero weight array.

    Inputs:
    - shape: shape of the weight array.
    - dtype: floating type of the result.

    Returns:
    - w: zeros of ``shape``.
    """
    return np.zeros(shape, dtype=dtype)


class Zeros(Initializer):
    """All-zero weights; warns because the neurons of a layer never become different."""

    name: ClassVar[str] = "zeros"
    summary: ClassVar[str] = "All-zero weights (warns: every neuron computes the same thing)."
    Config: ClassVar[type[Config]] = EmptyConfig
    examples: ClassVar[tuple[dict, ...]] = ({},)

    def __call__(
        self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator, dtype=np.float32
    ) -> np.ndarray:
        warnings.warn(ZERO_INIT_WARNING, UserWarning, stacklevel=2)
        return zeros_init(shape, dtype)
