"""Softmax (cross-entropy) loss, computed stably.

L_i = -log(exp(s_{y_i}) / sum_j exp(s_j)); the loss is the mean over samples.
Subtracting each row's maximum score first changes nothing mathematically and
keeps exp from overflowing.  With tiny weights the first loss is about ln(C).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from dlcore.backend import xp
from dlcore.component import Loss
from dlcore.config import Config, EmptyConfig


def softmax_loss(scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Cross-entropy of the softmax of the scores, and its gradient, mean over samples.

    Inputs:
    - scores: (N, C) class scores.
    - y: (N,) integer labels in [0, C).

    Returns:
    - loss: float, the mean over samples.
    - dscores: (N, C) gradient of the loss with respect to scores.
    """
    num_samples = scores.shape[0]
    rows = xp.arange(num_samples)
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    loss = -float(log_probs[rows, y].sum()) / num_samples

    dscores = xp.exp(log_probs)
    dscores[rows, y] -= 1
    dscores /= num_samples
    return loss, dscores


class SoftmaxLoss(Loss):
    """Cross-entropy of the softmax of the scores (stable), mean over samples."""

    name: ClassVar[str] = "softmax"
    summary: ClassVar[str] = "Softmax cross-entropy loss, computed stably, mean over samples."
    Config: ClassVar[type[Config]] = EmptyConfig
    examples: ClassVar[tuple[dict, ...]] = ({},)

    def forward(self, scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        return softmax_loss(scores, y)

    def expected_initial_loss(self, num_classes: int) -> float:
        return math.log(num_classes)
