"""L2 regularization with the 0.5 convention: 0.5 * strength * sum w^2.

The 0.5 makes the gradient simply ``strength * w``.  It spreads weight evenly
over the inputs.  The model applies it to weights only, never to biases or
batchnorm's gamma and beta.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Regularizer
from dlcore.config import Config


def l2_penalty(w: np.ndarray, strength: float) -> tuple[float, np.ndarray]:
    """L2 penalty 0.5 * strength * sum(w^2) and its gradient.

    Inputs:
    - w: weight array, any shape.
    - strength: the regularization strength (lambda), >= 0.

    Returns:
    - value: float penalty.
    - dw: array shaped like w, strength * w.
    """
    flat = w.ravel()
    value = 0.5 * strength * float(xp.dot(flat, flat))
    return value, strength * w


class L2Config(Config):
    strength: float = Field(
        1e-4, ge=0, description="Regularization strength lambda in 0.5 * lambda * sum(w^2)."
    )


class L2(Regularizer):
    """L2 weight penalty 0.5 * strength * sum(w^2); gradient strength * w."""

    name: ClassVar[str] = "l2"
    summary: ClassVar[str] = "L2 weight penalty 0.5 * strength * sum(w^2) (gradient strength * w)."
    Config: ClassVar[type[Config]] = L2Config
    examples: ClassVar[tuple[dict, ...]] = ({}, {"strength": 0.01})

    def penalty(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        return l2_penalty(w, self.config.strength)
