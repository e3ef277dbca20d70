"""L1 regularization: strength * sum |w|; it drives weights to exactly zero (sparsity).

The gradient is ``strength * sign(w)``, taken as 0 at w == 0 (a subgradient).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Regularizer
from dlcore.config import Config


def l1_penalty(w: np.ndarray, strength: float) -> tuple[float, np.ndarray]:
    """L1 penalty strength * sum|w| and its (sub)gradient.

    Inputs:
    - w: weight array, any shape.
    - strength: the regularization strength (lambda), >= 0.

    Returns:
    - value: float penalty.
    - dw: array shaped like w, strength * sign(w).
    """
    value = strength * float(xp.abs(w).sum())
    return value, strength * xp.sign(w)


class L1Config(Config):
    strength: float = Field(
        1e-4, ge=0, description="Regularization strength lambda in lambda * sum|w|."
    )


class L1(Regularizer):
    """L1 weight penalty strength * sum|w|; gradient strength * sign(w)."""

    name: ClassVar[str] = "l1"
    summary: ClassVar[str] = "L1 weight penalty strength * sum|w| (encourages sparse weights)."
    Config: ClassVar[type[Config]] = L1Config
    examples: ClassVar[tuple[dict, ...]] = ({}, {"strength": 0.01})

    def penalty(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        return l1_penalty(w, self.config.strength)
