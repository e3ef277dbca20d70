"""Zero-centring by one mean per channel (VGG style).

Images (N, C, H, W) get C means, each over samples and positions; vectors
(N, D) are treated as D channels of one position each.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from dlcore.component import Preprocessor
from dlcore.config import Config, EmptyConfig
from dlcore.preprocessing import output_dtype, require_fitted, require_samples


def _channel_axes(ndim: int) -> tuple[int, ...]:
    return (0, 2, 3) if ndim == 4 else (0,)


def per_channel_mean_fit(x: np.ndarray) -> np.ndarray:
    """The mean of each channel over samples and positions.

    Inputs:
    - x: (N, C, H, W) or (N, D) training samples.

    Returns:
    - mean: (C,) or (D,) float64.
    """
    return np.mean(x, axis=_channel_axes(x.ndim), dtype=np.float64)


def per_channel_mean_transform(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Subtract each channel's fitted mean (a new array).

    Inputs:
    - x: (N, C, H, W) or (N, D) samples; not modified.
    - mean: (C,) or (D,) from ``per_channel_mean_fit``.

    Returns:
    - out: x minus its channel's mean, shaped like x, in x's floating dtype.
    """
    if x.ndim not in (2, 4) or x.shape[1] != mean.shape[0]:
        raise ValueError(
            f"per_channel_mean: fitted on {mean.shape[0]} channels, "
            f"got samples of shape {list(x.shape[1:])}"
        )
    out = x.astype(output_dtype(x), copy=True)
    per_channel = mean.reshape((-1,) + (1,) * (x.ndim - 2))
    np.subtract(out, per_channel, out=out, casting="same_kind")
    return out


class PerChannelMean(Preprocessor):
    """Subtracts the training split's mean of each channel (C,)."""

    name: ClassVar[str] = "per_channel_mean"
    summary: ClassVar[str] = "Zero-centre by the training mean of each channel (VGG style)."
    Config: ClassVar[type[Config]] = EmptyConfig
    examples: ClassVar[tuple[dict, ...]] = ({},)

    def fit(self, x: np.ndarray) -> PerChannelMean:
        require_samples(self.name, x)
        self.state = {"mean": per_channel_mean_fit(x)}
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return per_channel_mean_transform(x, require_fitted(self.name, self.state, "mean"))
