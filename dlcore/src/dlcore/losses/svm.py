"""Multiclass SVM (hinge) loss, the CS231n form.

L_i = sum over j != y_i of max(0, s_j - s_{y_i} + margin); the loss is the
mean over samples.  With tiny weights every score is about 0, so each wrong
class contributes ``margin`` and the first loss is about margin * (C - 1).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Loss
from dlcore.config import Config


def svm_loss(scores: np.ndarray, y: np.ndarray, margin: float = 1.0) -> tuple[float, np.ndarray]:
    """Multiclass hinge loss and its gradient, mean over samples.

    Inputs:
    - scores: (N, C) class scores.
    - y: (N,) integer labels in [0, C).
    - margin: how far the correct score must beat each wrong one.

    Returns:
    - loss: float, the mean over samples.
    - dscores: (N, C) gradient of the loss with respect to scores.
    """
    num_samples = scores.shape[0]
    rows = xp.arange(num_samples)
    correct = scores[rows, y][:, None]
    margins = xp.maximum(scores - correct + margin, 0)
    margins[rows, y] = 0
    loss = float(margins.sum()) / num_samples

    # Each violating wrong class pushes its score up by 1 and the correct score down by 1.
    dscores = (margins > 0).astype(scores.dtype)
    dscores[rows, y] = -dscores.sum(axis=1)
    dscores /= num_samples
    return loss, dscores


class SVMLossConfig(Config):
    margin: float = Field(
        1.0, gt=0, description="Margin by which the correct class score must beat every other."
    )


class SVMLoss(Loss):
    """Multiclass hinge loss: sum over j != y of max(0, s_j - s_y + margin), mean over samples."""

    name: ClassVar[str] = "svm"
    summary: ClassVar[str] = (
        "Multiclass SVM (hinge) loss, summed over wrong classes, mean over samples."
    )
    Config: ClassVar[type[Config]] = SVMLossConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"margin": 0.5})

    def forward(self, scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        return svm_loss(scores, y, self.config.margin)

    def expected_initial_loss(self, num_classes: int) -> float:
        return self.config.margin * (num_classes - 1)
