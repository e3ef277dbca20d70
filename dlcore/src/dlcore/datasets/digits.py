"""The 8x8 handwritten digits scikit-learn bundles: 1,797 real images, 10 classes.

The images ship with dlcore (``datasets/data/digits.npz``, see its README), so
dlcore needs no scikit-learn to offer them.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from dlcore.component import Dataset, Shape


class Digits(Dataset):
    """``sklearn.datasets.load_digits().images`` unchanged (values 0-16) as (N, 1, 8, 8).

    Any scaling is a saved preprocessing step of the job, not part of the data.
    """

    name = "digits"
    summary = "The UCI / scikit-learn 8x8 handwritten digits (1,797 images, 10 classes, values 0-16)."

    def sample_shape(self) -> Shape:
        return (1, 8, 8)

    def num_classes(self) -> int:
        return 10

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns x: (1797, 1, 8, 8) float64 in [0, 16], y: (1797,) int64 in [0, 10)."""
        with resources.files("dlcore.datasets").joinpath("data/digits.npz").open("rb") as f, np.load(f, allow_pickle=False) as data:
            x = data["images"].astype(np.float64)[:, None, :, :]
            y = data["target"].astype(np.int64)
        return x, y
