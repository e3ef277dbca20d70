"""Zero-centring by the mean image (AlexNet style): one mean per position.

The mean over the training samples keeps the sample shape, (C, H, W) for
images or (D,) for vectors, and is subtracted from every sample.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from dlcore.component import Preprocessor
from dlcore.config import Config, EmptyConfig
from dlcore.preprocessing import output_dtype, require_fitted, require_samples


def mean_image_fit(x: np.ndarray) -> np.ndarray:
    """The per-position mean of the training samples.

    Inputs:
    - x: (N, C, H, W) or (N, D) training samples.

    Returns:
    - mean: (C, H, W) or (D,) float64.
    """
    return np.mean(x, axis=0, dtype=np.float64)


def mean_image_transform(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Subtract the fitted mean image from every sample (a new array).

    Inputs:
    - x: (N, C, H, W) or (N, D) samples; not modified.
    - mean: (C, H, W) or (D,) from ``mean_image_fit``.

    Returns:
    - out: x - mean, shaped like x, in x's floating dtype (float32 for integer x).
    """
    if x.shape[1:] != mean.shape:
        raise ValueError(
            f"mean_image: fitted on samples of shape {list(mean.shape)}, "
            f"got samples of shape {list(x.shape[1:])}"
        )
    out = x.astype(output_dtype(x), copy=True)
    np.subtract(out, mean, out=out, casting="same_kind")
    return out


class MeanImage(Preprocessor):
    """Subtracts the training mean image, one mean per position (C, H, W) or feature (D,)."""

    name: ClassVar[str] = "mean_image"
    summary: ClassVar[str] = (
        "Zero-centre by the training mean image, one mean per position (AlexNet style)."
    )
    Config: ClassVar[type[Config]] = EmptyConfig
    examples: ClassVar[tuple[dict, ...]] = ({},)

    def fit(self, x: np.ndarray) -> MeanImage:
        require_samples(self.name, x)
        self.state = {"mean": mean_image_fit(x)}
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return mean_image_transform(x, require_fitted(self.name, self.state, "mean"))
