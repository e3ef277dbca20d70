"""Normalization by the standard deviation of each feature: x / std(X_train, axis=0).

Features whose training std is below 1e-8 (pixels blank in every training
image) are left unscaled instead of being divided by almost nothing.  It
scales only; put ``mean_image`` or ``per_channel_mean`` before it to centre.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from dlcore.component import Preprocessor
from dlcore.config import Config, EmptyConfig
from dlcore.preprocessing import output_dtype, require_fitted, require_samples

#: Features with a training std below this are not scaled.
MIN_STD = 1e-8

# Samples per chunk when summing squared deviations: bounds the float64 temporary
# (e.g. 1024 CIFAR images are 25 MB) whatever the size of the training split.
_CHUNK = 1024


def std_fit(x: np.ndarray) -> np.ndarray:
    """The per-feature standard deviation over samples, 1 where it is below MIN_STD.

    Inputs:
    - x: (N, C, H, W) or (N, D) training samples.

    Returns:
    - std: (C, H, W) or (D,) float64, the population std (ddof 0), MIN_STD-guarded.
    """
    mean = np.mean(x, axis=0, dtype=np.float64)
    squares = np.zeros_like(mean)
    for start in range(0, x.shape[0], _CHUNK):
        deviation = x[start : start + _CHUNK] - mean
        squares += np.einsum("n...,n...->...", deviation, deviation)
    std = np.sqrt(squares / x.shape[0])
    std[std < MIN_STD] = 1.0
    return std


def std_transform(x: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Divide every feature by its fitted std (a new array).

    Inputs:
    - x: (N, C, H, W) or (N, D) samples; not modified.
    - std: (C, H, W) or (D,) from ``std_fit``.

    Returns:
    - out: x / std, shaped like x, in x's floating dtype (float32 for integer x).
    """
    if x.shape[1:] != std.shape:
        raise ValueError(
            f"std: fitted on samples of shape {list(std.shape)}, "
            f"got samples of shape {list(x.shape[1:])}"
        )
    out = x.astype(output_dtype(x), copy=True)
    np.divide(out, std, out=out, casting="same_kind")
    return out


class Std(Preprocessor):
    """Divides each feature by its training std; features with std < 1e-8 stay unscaled."""

    name: ClassVar[str] = "std"
    summary: ClassVar[str] = (
        "Divide each feature by its training std (features with std < 1e-8 left unscaled)."
    )
    Config: ClassVar[type[Config]] = EmptyConfig
    examples: ClassVar[tuple[dict, ...]] = ({},)

    def fit(self, x: np.ndarray) -> Std:
        require_samples(self.name, x)
        self.state = {"std": std_fit(x)}
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return std_transform(x, require_fitted(self.name, self.state, "std"))
